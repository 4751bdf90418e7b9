//! Settings of traces, the access log, notifications and e-mail: read from the configuration file
//! (flat keys below), the standard OpenTelemetry variables, then `ODOCK_*` variables (each
//! overriding the one before), checked once, printed with secrets masked.

use odock_core::Secret;
use serde::Deserialize;

use crate::telemetry::{http_traces_url, OtlpProtocol, TraceSettings};

/// What the access log writes (`ODOCK_ACCESS_LOG`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogMode {
    /// One line per request (successes sampled by `access_log_sample_ratio`).
    #[default]
    All,
    /// Only requests answered with a status of 400 or more.
    Errors,
    /// No access log.
    Off,
}

impl std::str::FromStr for AccessLogMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Self::All),
            "errors" => Ok(Self::Errors),
            "off" => Ok(Self::Off),
            other => Err(format!("`{other}` (expected all, errors or off)")),
        }
    }
}

/// The observability keys of the configuration file.
#[derive(Debug, Clone, Default)]
pub struct ObservabilityFile {
    /// OTLP base endpoint (like `OTEL_EXPORTER_OTLP_ENDPOINT`); setting it turns trace export on.
    pub otel_endpoint: Option<String>,
    /// `http/protobuf` (default) or `grpc`.
    pub otel_protocol: Option<String>,
    /// `service.name` of exported spans (default `odock`).
    pub otel_service_name: Option<String>,
    /// Share of new traces sampled, 0..=1 (default 1).
    pub otel_sample_ratio: Option<f64>,
    /// `all` (default), `errors` or `off`.
    pub access_log: Option<AccessLogMode>,
    /// Share of successful requests written to the access log, 0..=1 (default 1).
    pub access_log_sample_ratio: Option<f64>,
    /// `smtps://user:pass@host:465` (TLS), `smtp://user:pass@host:587?tls=required` (STARTTLS),
    /// `?tls=opportunistic`, or plain `smtp://host:25` (a local relay). Unset: no e-mail
    /// (invitations return their link).
    pub smtp_url: Option<String>,
    /// The `From` address of Odock's e-mail.
    pub smtp_from: Option<String>,
    /// First retry delay of a failed notification, in milliseconds (default 1000; doubles each
    /// attempt, at most one hour).
    pub notify_retry_base_ms: Option<u64>,
    /// Attempts before a notification is given up (default 8).
    pub notify_max_attempts: Option<u32>,
    /// Days before a key's expiry that `apikey.expiring` is sent (default 7; 0 = never).
    pub key_expiry_warning_days: Option<u32>,
}

/// The checked observability settings.
#[derive(Debug, Clone)]
pub struct Observability {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` / `ODOCK_OTEL_ENDPOINT` (base; the signal path is appended
    /// for HTTP).
    pub otel_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is).
    pub otel_traces_endpoint: Option<String>,
    /// OTLP transport (`OTEL_EXPORTER_OTLP_PROTOCOL`, `ODOCK_OTEL_PROTOCOL`; default
    /// `http/protobuf`).
    pub otel_protocol: OtlpProtocol,
    /// `service.name` of spans (`OTEL_SERVICE_NAME`, `ODOCK_OTEL_SERVICE_NAME`; default `odock`).
    pub otel_service_name: String,
    /// Share of new traces sampled, 0..=1 (`ODOCK_OTEL_SAMPLE_RATIO`; default 1).
    pub otel_sample_ratio: f64,
    /// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
    pub otel_disabled: bool,
    /// Which requests are logged (`ODOCK_ACCESS_LOG`: `all` (default), `errors`, `off`).
    pub access_log: AccessLogMode,
    /// Share of successful lines kept, 0..=1 (`ODOCK_ACCESS_LOG_SAMPLE_RATIO`; default 1).
    pub access_log_sample_ratio: f64,
    /// SMTP server for e-mail (`ODOCK_SMTP_URL`); `None`: no e-mail.
    pub smtp_url: Option<Secret>,
    /// `From` address of Odock's e-mail (`ODOCK_SMTP_FROM`; required with `smtp_url`).
    pub smtp_from: Option<String>,
    /// First notification retry delay in milliseconds (`ODOCK_NOTIFY_RETRY_BASE_MS`; default 1000).
    pub notify_retry_base_ms: u64,
    /// Delivery attempts before giving up (`ODOCK_NOTIFY_MAX_ATTEMPTS`; default 8).
    pub notify_max_attempts: u32,
    /// Days before key expiry to warn (`ODOCK_KEY_EXPIRY_WARNING_DAYS`; default 7, 0 = never).
    pub key_expiry_warning_days: u32,
}

impl Default for Observability {
    fn default() -> Self {
        Self {
            otel_endpoint: None,
            otel_traces_endpoint: None,
            otel_protocol: OtlpProtocol::HttpProtobuf,
            otel_service_name: "odock".to_owned(),
            otel_sample_ratio: 1.0,
            otel_disabled: false,
            access_log: AccessLogMode::All,
            access_log_sample_ratio: 1.0,
            smtp_url: None,
            smtp_from: None,
            notify_retry_base_ms: 1_000,
            notify_max_attempts: 8,
            key_expiry_warning_days: 7,
        }
    }
}

fn invalid(
    name: &'static str,
    message: impl std::fmt::Display,
) -> crate::config_error::ConfigError {
    crate::config_error::ConfigError::Invalid {
        name,
        message: message.to_string(),
    }
}

impl Observability {
    pub(crate) fn apply_file(
        &mut self,
        file: ObservabilityFile,
    ) -> Result<(), crate::config_error::ConfigError> {
        if let Some(v) = file.otel_endpoint.filter(|v| !v.is_empty()) {
            self.otel_endpoint = Some(v);
        }
        if let Some(v) = file.otel_protocol {
            self.otel_protocol = v.parse().map_err(|e| invalid("otel_protocol", e))?;
        }
        if let Some(v) = file.otel_service_name.filter(|v| !v.is_empty()) {
            self.otel_service_name = v;
        }
        if let Some(v) = file.otel_sample_ratio {
            self.otel_sample_ratio = v;
        }
        if let Some(v) = file.access_log {
            self.access_log = v;
        }
        if let Some(v) = file.access_log_sample_ratio {
            self.access_log_sample_ratio = v;
        }
        if let Some(v) = file.smtp_url.filter(|v| !v.is_empty()) {
            self.smtp_url = Some(Secret::new(v));
        }
        if let Some(v) = file.smtp_from.filter(|v| !v.is_empty()) {
            self.smtp_from = Some(v);
        }
        if let Some(v) = file.notify_retry_base_ms {
            self.notify_retry_base_ms = v;
        }
        if let Some(v) = file.notify_max_attempts {
            self.notify_max_attempts = v;
        }
        if let Some(v) = file.key_expiry_warning_days {
            self.key_expiry_warning_days = v;
        }
        Ok(())
    }

    /// The standard OpenTelemetry variables, then Odock's own.
    pub(crate) fn apply_env(
        &mut self,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), crate::config_error::ConfigError> {
        if let Some(v) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            self.otel_endpoint = Some(v);
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            self.otel_traces_endpoint = Some(v);
        }
        for name in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ] {
            if let Some(v) = get(name) {
                self.otel_protocol = v.parse().map_err(|e| invalid(name, e))?;
            }
        }
        if let Some(v) = get("OTEL_SERVICE_NAME") {
            self.otel_service_name = v;
        }
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || get("OTEL_TRACES_EXPORTER").is_some_and(|v| v == "none")
        {
            self.otel_disabled = true;
        }
        if let Some(v) = get("ODOCK_OTEL_ENDPOINT") {
            self.otel_endpoint = Some(v);
            self.otel_traces_endpoint = None;
        }
        if let Some(v) = get("ODOCK_OTEL_PROTOCOL") {
            self.otel_protocol = v.parse().map_err(|e| invalid("ODOCK_OTEL_PROTOCOL", e))?;
        }
        if let Some(v) = get("ODOCK_OTEL_SERVICE_NAME") {
            self.otel_service_name = v;
        }
        if let Some(v) = get("ODOCK_OTEL_SAMPLE_RATIO") {
            self.otel_sample_ratio = v
                .parse()
                .map_err(|e| invalid("ODOCK_OTEL_SAMPLE_RATIO", e))?;
        }
        if let Some(v) = get("ODOCK_ACCESS_LOG") {
            self.access_log = v.parse().map_err(|e| invalid("ODOCK_ACCESS_LOG", e))?;
        }
        if let Some(v) = get("ODOCK_ACCESS_LOG_SAMPLE_RATIO") {
            self.access_log_sample_ratio = v
                .parse()
                .map_err(|e| invalid("ODOCK_ACCESS_LOG_SAMPLE_RATIO", e))?;
        }
        if let Some(v) = get("ODOCK_SMTP_URL") {
            self.smtp_url = Some(Secret::new(v));
        }
        if let Some(v) = get("ODOCK_SMTP_FROM") {
            self.smtp_from = Some(v);
        }
        if let Some(v) = get("ODOCK_NOTIFY_RETRY_BASE_MS") {
            self.notify_retry_base_ms = v
                .parse()
                .map_err(|e| invalid("ODOCK_NOTIFY_RETRY_BASE_MS", e))?;
        }
        if let Some(v) = get("ODOCK_NOTIFY_MAX_ATTEMPTS") {
            self.notify_max_attempts = v
                .parse()
                .map_err(|e| invalid("ODOCK_NOTIFY_MAX_ATTEMPTS", e))?;
        }
        if let Some(v) = get("ODOCK_KEY_EXPIRY_WARNING_DAYS") {
            self.key_expiry_warning_days = v
                .parse()
                .map_err(|e| invalid("ODOCK_KEY_EXPIRY_WARNING_DAYS", e))?;
        }
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<(), crate::config_error::ConfigError> {
        for (name, ratio) in [
            ("otel_sample_ratio", self.otel_sample_ratio),
            ("access_log_sample_ratio", self.access_log_sample_ratio),
        ] {
            if !(0.0..=1.0).contains(&ratio) {
                return Err(invalid(name, "must be between 0 and 1"));
            }
        }
        if let Some(endpoint) = self.trace_settings().endpoint {
            let url = reqwest::Url::parse(&endpoint)
                .map_err(|e| invalid("otel_endpoint", format!("not a URL ({e})")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid("otel_endpoint", "expected http(s)://host[:port]"));
            }
        }
        if let Some(url) = &self.smtp_url {
            crate::notify::email::check_smtp_url(url.expose())
                .map_err(|e| invalid("smtp_url", e))?;
            if self.smtp_from.is_none() {
                return Err(invalid("smtp_from", "required with smtp_url"));
            }
        }
        if let Some(from) = &self.smtp_from {
            from.parse::<lettre::message::Mailbox>()
                .map_err(|e| invalid("smtp_from", e))?;
        }
        if self.notify_max_attempts == 0 {
            return Err(invalid("notify_max_attempts", "must be positive"));
        }
        Ok(())
    }

    /// Where and how spans are exported (`endpoint: None` = off).
    pub fn trace_settings(&self) -> TraceSettings {
        let endpoint = if self.otel_disabled {
            None
        } else {
            match (&self.otel_traces_endpoint, &self.otel_endpoint) {
                (Some(exact), _) => Some(exact.clone()),
                (None, Some(base)) => Some(match self.otel_protocol {
                    OtlpProtocol::HttpProtobuf => http_traces_url(base),
                    OtlpProtocol::Grpc => base.clone(),
                }),
                (None, None) => None,
            }
        };
        TraceSettings {
            endpoint,
            protocol: self.otel_protocol,
            service_name: self.otel_service_name.clone(),
            sample_ratio: self.otel_sample_ratio,
        }
    }

    /// The `--check-config` lines (the SMTP URL masked: it may carry a password).
    pub fn describe(&self) -> String {
        let traces = self.trace_settings();
        format!(
            "otel_traces_endpoint = {}\notel_protocol = {:?}\notel_service_name = {}\notel_sample_ratio = {}\naccess_log = {:?}\naccess_log_sample_ratio = {}\nsmtp_url = {}\nsmtp_from = {}\nnotify_retry_base_ms = {}\nnotify_max_attempts = {}\nkey_expiry_warning_days = {}\n",
            traces.endpoint.as_deref().map_or_else(|| "(off)".to_owned(), mask_userinfo),
            traces.protocol,
            traces.service_name,
            traces.sample_ratio,
            self.access_log,
            self.access_log_sample_ratio,
            if self.smtp_url.is_some() { "***" } else { "(unset)" },
            self.smtp_from.as_deref().unwrap_or("(unset)"),
            self.notify_retry_base_ms,
            self.notify_max_attempts,
            self.key_expiry_warning_days,
        )
    }
}

/// A URL with any `user:password@` replaced by `***@`.
fn mask_userinfo(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("***");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
