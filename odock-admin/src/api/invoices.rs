//! `GET /api/organisations/{organisationId}/invoices?from&to&teamIds&apiKeyIds&format=json|csv|pdf`:
//! the invoice of a period as JSON, as a CSV of every usage record (streamed in chunks), or as a
//! PDF document. The period defaults to the current UTC month up to now.

use crate::invoices::{self, pdf};
use crate::services::organisations;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use futures::TryStreamExt;
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use http::{Extensions, HeaderValue};

use super::analytics::{visibility, ReportParams};
use super::error::ApiError;
use super::extract::AdminQuery;
use super::AdminState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Pdf,
}

impl Format {
    fn parse(format: Option<&str>) -> Result<Self, ApiError> {
        match format.map(str::to_ascii_lowercase).as_deref() {
            None | Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some("pdf") => Ok(Format::Pdf),
            Some(_) => Err(ApiError::invalid(
                Some("format"),
                "format must be json, csv or pdf",
            )),
        }
    }
}

/// `[from, to)`: `to` defaults to now, `from` to the start of `to`'s UTC month.
fn period(params: &ReportParams) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = params.to.unwrap_or_else(Utc::now);
    let from = match params.from {
        Some(from) => from,
        None => {
            let last = to - chrono::Duration::milliseconds(1);
            Utc.with_ymd_and_hms(last.year(), last.month(), 1, 0, 0, 0)
                .single()
                .unwrap_or(last)
        }
    };
    if from >= to {
        return Err(ApiError::invalid(Some("from"), "from must be before to"));
    }
    Ok((from, to))
}

/// `GET /api/organisations/{organisationId}/invoices`: the invoice of a period: totals and
/// breakdowns (JSON), every record (CSV) or a PDF. Access: any user of the organisation, filtered
/// to what they may see.
pub async fn invoice(
    State(state): State<AdminState>,
    Path(organisation_id): Path<String>,
    extensions: Extensions,
    AdminQuery(params): AdminQuery<ReportParams>,
) -> Result<Response, ApiError> {
    organisations::ensure_exists(&state.pool, &organisation_id).await?;
    let format = Format::parse(params.format.as_deref())?;
    // An invoice covers every billed request of its teams and keys; narrower cuts are reports.
    let summary_only = [
        ("groupBy", params.group_by.is_some()),
        ("traffic", params.traffic.is_some()),
        ("modelIds", params.model_ids.is_some()),
        ("providers", params.providers.is_some()),
        ("userIds", params.user_ids.is_some()),
        ("status", params.status.is_some()),
    ];
    if let Some((field, _)) = summary_only.iter().find(|(_, set)| *set) {
        return Err(ApiError::invalid(
            Some(field),
            "groupBy, traffic, modelIds, providers, userIds and status apply to the usage summary only",
        ));
    }
    let (from, to) = period(&params)?;
    let filename = format!(
        "odock-invoice-{organisation_id}-{}-{}",
        from.format("%Y%m%d"),
        to.format("%Y%m%d")
    );
    let scope = params.scope(organisation_id, visibility(&state, &extensions).await?);
    match format {
        Format::Json => {
            let invoice = invoices::build(&state.pool, &scope, from, to).await?;
            Ok(Json(invoice).into_response())
        }
        Format::Pdf => {
            let invoice = invoices::build(&state.pool, &scope, from, to).await?;
            let document = pdf::render(&invoice);
            Ok(download(
                "application/pdf",
                &format!("{filename}.pdf"),
                Body::from(document),
            ))
        }
        Format::Csv => {
            let chunks =
                invoices::csv_chunks(state.pool.clone(), scope, from, to).map_err(|error| {
                    // The status is already sent: cut the body short so the client sees the failure.
                    tracing::error!(error = %error, "invoice CSV export failed");
                    std::io::Error::other("invoice CSV export failed")
                });
            Ok(download(
                "text/csv; charset=utf-8",
                &format!("{filename}.csv"),
                Body::from_stream(chunks),
            ))
        }
    }
}

/// A 200 attachment.
fn download(content_type: &'static str, filename: &str, body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Organisation ids are plain (`[a-z0-9]`); anything else is dropped from the file name.
    let safe: String = filename
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_defaults_to_the_month_so_far() {
        let params = ReportParams {
            to: Some(Utc.with_ymd_and_hms(2024, 3, 15, 10, 0, 0).unwrap()),
            ..ReportParams::default()
        };
        let (from, _) = period(&params).unwrap();
        assert_eq!(from, Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap());
        // A `to` at midnight of the 1st closes the previous month.
        let params = ReportParams {
            to: Some(Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap()),
            ..ReportParams::default()
        };
        let (from, _) = period(&params).unwrap();
        assert_eq!(from, Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap());
        let params = ReportParams {
            from: params.to,
            ..params
        };
        assert!(period(&params).is_err());
        assert!(Format::parse(Some("xml")).is_err());
        assert_eq!(Format::parse(Some("PDF")).unwrap(), Format::Pdf);
    }
}
