//! E-mail over SMTP (`ODOCK_SMTP_URL`, `ODOCK_SMTP_FROM`) with lettre: alerts to EMAIL channels
//! and invitations. Messages are multipart (plain text + HTML). The URL may carry credentials; it
//! is never logged and errors never repeat it.

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Checks an SMTP URL without connecting (the message never repeats the URL).
pub fn check_smtp_url(url: &str) -> Result<(), String> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map(|_| ())
        .map_err(|_| {
            "expected smtp://[user:pass@]host[:port][?tls=required|opportunistic] or smtps://…"
                .to_owned()
        })
}

/// Sends Odock's e-mail.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    /// A mailer for an `smtp://` or `smtps://` `url`, sending from `from`; `Err` says what is
    /// wrong.
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        check_smtp_url(url)?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|_| "invalid SMTP URL".to_owned())?
            .timeout(Some(std::time::Duration::from_secs(20)))
            .build();
        let from = from.parse().map_err(|e| format!("smtp_from: {e}"))?;
        Ok(Self { transport, from })
    }

    /// Sends one message to `to` (every address in `To`).
    pub async fn send(
        &self,
        to: &[String],
        subject: &str,
        text: String,
        html: String,
    ) -> Result<(), String> {
        let mut builder = Message::builder().from(self.from.clone()).subject(subject);
        for address in to {
            let mailbox: Mailbox = address
                .parse()
                .map_err(|_| "a recipient is not a valid address".to_owned())?;
            builder = builder.to(mailbox);
        }
        let message = builder
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html),
                    ),
            )
            .map_err(|e| format!("message: {e}"))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("SMTP: {}", smtp_error(&e)))
    }
}

/// An SMTP error without anything that could be the URL or credentials.
fn smtp_error(error: &lettre::transport::smtp::Error) -> String {
    if let Some(code) = error.status() {
        format!("server answered {code}")
    } else if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_tls() {
        "TLS failed".to_owned()
    } else {
        "connection failed".to_owned()
    }
}

/// Escapes text for HTML.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
