//! Server-rendered SVG charts: a daily column series, a horizontal top-N bar chart, a stacked
//! status bar and a window gauge. Each value is labelled on the chart itself (no legend to hunt
//! for), each mark carries a `<title>` tooltip, and the SVG scales to the page width.

use std::fmt::Write;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Columns over time: one per `(label, value)`, the value formatted by `format`.
pub fn columns(title: &str, points: &[(String, f64)], format: &dyn Fn(f64) -> String) -> String {
    let width = 720.0;
    let height = 220.0;
    let (left, bottom, top) = (28.0, 28.0, 24.0);
    let max = points.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    if points.is_empty() || max <= 0.0 {
        return empty_chart(title);
    }
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{}"><title>{}</title>"#,
        escape(title),
        escape(title)
    );
    let slot = (width - left * 2.0) / points.len() as f64;
    let bar = (slot * 0.7).max(1.0);
    let plot = height - bottom - top;
    let _ = write!(
        svg,
        r#"<text x="{left}" y="16" class="muted">max {}</text>"#,
        escape(&format(max))
    );
    let label_every = (points.len() / 8).max(1);
    for (i, (label, value)) in points.iter().enumerate() {
        let h = (value / max * plot).max(if *value > 0.0 { 1.0 } else { 0.0 });
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let y = top + plot - h;
        let _ = write!(
            svg,
            r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}"><title>{}: {}</title></rect>"#,
            escape(label),
            escape(&format(*value))
        );
        if i % label_every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle" class="axis">{}</text>"#,
                x + bar / 2.0,
                height - 8.0,
                escape(label.get(5..).unwrap_or(label))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars, largest first, with the name and value written beside each bar.
pub fn bars(title: &str, items: &[(String, f64)], format: &dyn Fn(f64) -> String) -> String {
    let row = 28.0;
    let width = 560.0;
    let height = (items.len().max(1) as f64) * row + 8.0;
    let label_width = 170.0;
    let max = items.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    if items.is_empty() || max <= 0.0 {
        return empty_chart(title);
    }
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart bars" viewBox="0 0 {width} {height}" role="img" aria-label="{}"><title>{}</title>"#,
        escape(title),
        escape(title)
    );
    for (i, (label, value)) in items.iter().enumerate() {
        let y = i as f64 * row + 4.0;
        let w = (value / max * (width - label_width - 110.0)).max(1.0);
        let name: String = label.chars().take(20).collect();
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end" class="axis">{}</text><rect class="bar" x="{label_width}" y="{y:.1}" width="{w:.1}" height="{:.1}"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}" class="axis">{}</text>"#,
            label_width - 8.0,
            y + row * 0.6,
            escape(&name),
            row - 8.0,
            escape(label),
            escape(&format(*value)),
            label_width + w + 6.0,
            y + row * 0.6,
            escape(&format(*value))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The chart of a period without data: one short line saying so.
fn empty_chart(title: &str) -> String {
    format!(
        r#"<p class="empty">{}: no data in this period.</p>"#,
        escape(title)
    )
}

/// Daily `(YYYY-MM-DD, value)` points with the days between `from` and `to` that have no data
/// added as zeros, so each column is one day wide whatever the data.
pub fn fill_days(
    points: &[(String, f64)],
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Vec<(String, f64)> {
    let known: std::collections::HashMap<&str, f64> =
        points.iter().map(|(day, v)| (day.as_str(), *v)).collect();
    let mut filled = Vec::new();
    let mut day = from;
    while day <= to && filled.len() < 400 {
        let label = day.format("%Y-%m-%d").to_string();
        let value = known.get(label.as_str()).copied().unwrap_or(0.0);
        filled.push((label, value));
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    filled
}

/// One stacked bar of successes and errors, with counts written on it.
pub fn status_bar(successes: i64, errors: i64) -> String {
    if successes + errors == 0 {
        return empty_chart("Status");
    }
    let total = (successes + errors) as f64;
    let width = 720.0;
    let ok = successes as f64 / total * width;
    format!(
        r#"<svg class="chart" viewBox="0 0 {width} 52" role="img" aria-label="{successes} successful, {errors} failed"><rect class="ok" x="0" y="4" width="{ok:.1}" height="22"><title>{successes} successful</title></rect><rect class="err" x="{ok:.1}" y="4" width="{:.1}" height="22"><title>{errors} failed</title></rect><text x="4" y="46" class="axis">{successes} successful</text><text x="{width}" y="46" text-anchor="end" class="axis">{errors} failed</text></svg>"#,
        width - ok
    )
}

/// A window's used and reserved against its limit.
pub fn gauge(used: i64, reserved: i64, limit: i64) -> String {
    let width = 720.0;
    let scale = limit.max(used + reserved).max(1) as f64;
    let u = used as f64 / scale * width;
    let r = reserved as f64 / scale * width;
    let l = limit as f64 / scale * width;
    format!(
        r#"<svg class="chart gauge" viewBox="0 0 {width} 30" role="img" aria-label="used {used}, reserved {reserved}, limit {limit}"><rect class="track" x="0" y="4" width="{width}" height="20"/><rect class="bar" x="0" y="4" width="{u:.1}" height="20"><title>used {used}</title></rect><rect class="reserved" x="{u:.1}" y="4" width="{r:.1}" height="20"><title>reserved {reserved}</title></rect><line class="limit" x1="{l:.1}" x2="{l:.1}" y1="0" y2="30"><title>limit {limit}</title></line></svg>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_escape_labels_and_show_values() {
        let svg = bars("Top", &[("<b>".into(), 2.0)], &|v| format!("{v}"));
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
        assert!(svg.contains(">2<"));
        let empty = columns("Daily", &[], &|v| format!("{v}"));
        assert!(empty.contains("no data"));
        let from = chrono::NaiveDate::from_ymd_opt(2026, 2, 27).unwrap();
        let to = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let filled = fill_days(&[("2026-03-01".into(), 4.0)], from, to);
        assert_eq!(filled.len(), 4);
        assert_eq!(filled[2], ("2026-03-01".to_owned(), 4.0));
        assert!(gauge(5, 3, 10).contains("limit 10"));
    }
}
