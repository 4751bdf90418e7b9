//! The invoice as a PDF 1.4 document, written directly: a catalog, a page tree, the two standard
//! Helvetica fonts (no embedding needed), one content stream per A4 page, and a cross-reference
//! table with the exact byte offset of every object. Long breakdowns continue on further pages;
//! every page carries a "Page n of N" footer.
//!
//! Text is WinAnsi (Latin-1); characters outside it print as `?`.

use std::fmt::Write as _;

use super::{usd, Invoice, InvoiceLine};

const PAGE_WIDTH: f32 = 595.0;
const PAGE_HEIGHT: f32 = 842.0;
const MARGIN: f32 = 50.0;
const BODY_SIZE: f32 = 9.0;
const LEADING: f32 = 13.0;

/// Renders `invoice` as a complete PDF file.
pub fn render(invoice: &Invoice) -> Vec<u8> {
    let mut page = Layout::new();
    page.line(Font::Bold, 18.0, 26.0, "Odock invoice");
    let period = format!(
        "{} to {} (end exclusive)",
        invoice.period.from.format("%Y-%m-%d %H:%M UTC"),
        invoice.period.to.format("%Y-%m-%d %H:%M UTC")
    );
    let scope = if invoice.team_ids.is_empty() && invoice.api_key_ids.is_empty() {
        "Whole organisation".to_owned()
    } else {
        let mut parts = Vec::new();
        if !invoice.team_ids.is_empty() {
            parts.push(format!("teams {}", invoice.team_ids.join(", ")));
        }
        if !invoice.api_key_ids.is_empty() {
            parts.push(format!("API keys {}", invoice.api_key_ids.join(", ")));
        }
        parts.join("; ")
    };
    let facts = [
        ("Organisation", invoice.organisation_id.clone()),
        ("Period", period),
        ("Scope", scope),
        (
            "Generated",
            invoice
                .generated_at
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
        ),
    ];
    for (name, value) in facts {
        page.pair(name, &value);
    }
    page.gap();

    let totals = &invoice.totals;
    page.line(Font::Bold, 12.0, 18.0, "Totals");
    page.pair("Total cost", &format!("${}", totals.cost_usd));
    page.pair("LLM cost", &format!("${}", totals.llm_cost_usd));
    page.pair("MCP cost", &format!("${}", totals.mcp_cost_usd));
    page.pair(
        "Requests",
        &format!(
            "{} ({} LLM, {} MCP)",
            totals.requests, totals.llm_requests, totals.mcp_requests
        ),
    );
    page.pair("Billable tokens", &totals.billable_tokens.to_string());
    page.gap();

    let category = |name: &str, requests: i64, nanos: i64| InvoiceLine {
        id: None,
        name: name.to_owned(),
        requests,
        llm_cost_nanos_usd: 0,
        mcp_cost_nanos_usd: 0,
        cost_nanos_usd: nanos,
        billable_tokens: 0,
        cost_usd: usd(nanos),
    };
    let categories = [
        category("LLM", totals.llm_requests, totals.llm_cost_nanos_usd),
        category("MCP", totals.mcp_requests, totals.mcp_cost_nanos_usd),
    ];
    page.table("Cost by category", "Category", &categories, false);
    page.table("Cost by team", "Team", &invoice.by_team, true);
    page.table("Cost by API key", "API key", &invoice.by_api_key, true);
    page.table("Cost by model", "Model", &invoice.by_model, false);
    page.table(
        "Cost by MCP server",
        "MCP server",
        &invoice.by_mcp_server,
        false,
    );
    page.line(
        Font::Regular,
        BODY_SIZE - 1.0,
        LEADING,
        "Amounts in USD to nine decimals (integer nanos USD). Records without pricing count with zero cost.",
    );
    write_document(&page.finish(), "Odock invoice")
}

#[derive(Clone, Copy)]
enum Font {
    Regular,
    Bold,
}

impl Font {
    const fn resource(self) -> &'static str {
        match self {
            Font::Regular => "F1",
            Font::Bold => "F2",
        }
    }
}

/// Places lines top to bottom and starts a new page when one is full.
struct Layout {
    pages: Vec<String>,
    current: String,
    y: f32,
}

impl Layout {
    fn new() -> Self {
        Self {
            pages: Vec::new(),
            current: String::new(),
            y: PAGE_HEIGHT - MARGIN,
        }
    }

    /// Makes room for `height` points, on a new page if needed.
    fn room(&mut self, height: f32) {
        if self.y - height < MARGIN + LEADING {
            self.pages.push(std::mem::take(&mut self.current));
            self.y = PAGE_HEIGHT - MARGIN;
        }
    }

    fn text_at(&mut self, x: f32, font: Font, size: f32, text: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(
            self.current,
            "BT /{} {size:.1} Tf {x:.2} {y:.2} Td ({}) Tj ET",
            font.resource(),
            pdf_string(text),
            y = self.y,
        );
    }

    /// Text right-aligned so that it ends at `right`.
    fn text_right(&mut self, right: f32, font: Font, size: f32, text: &str) {
        let x = right - text_width(text, size);
        self.text_at(x, font, size, text);
    }

    fn line(&mut self, font: Font, size: f32, height: f32, text: &str) {
        self.room(height);
        self.y -= height;
        self.text_at(MARGIN, font, size, text);
    }

    fn pair(&mut self, name: &str, value: &str) {
        self.room(LEADING);
        self.y -= LEADING;
        self.text_at(MARGIN, Font::Bold, BODY_SIZE, name);
        self.text_at(MARGIN + 110.0, Font::Regular, BODY_SIZE, value);
    }

    fn gap(&mut self) {
        self.y -= LEADING / 2.0;
    }

    fn rule(&mut self) {
        let _ = writeln!(
            self.current,
            "0.5 w {MARGIN:.2} {y:.2} m {right:.2} {y:.2} l S",
            y = self.y - 3.0,
            right = PAGE_WIDTH - MARGIN,
        );
    }

    fn table_header(&mut self, first: &str) {
        self.room(LEADING * 2.0);
        self.y -= LEADING;
        self.text_at(MARGIN, Font::Bold, BODY_SIZE, first);
        for (right, name) in COLUMNS {
            self.text_right(right, Font::Bold, BODY_SIZE, name);
        }
        self.rule();
    }

    /// A titled breakdown; the header repeats on every page the table spans.
    fn table(&mut self, title: &str, first: &str, lines: &[InvoiceLine], show_ids: bool) {
        self.room(LEADING * 4.0);
        self.y -= 6.0;
        self.line(Font::Bold, 12.0, 18.0, title);
        self.table_header(first);
        if lines.is_empty() {
            self.line(Font::Regular, BODY_SIZE, LEADING, "No usage.");
        }
        for line in lines {
            if self.y - LEADING < MARGIN + LEADING {
                self.room(LEADING * 2.0);
                self.table_header(&format!("{first} (continued)"));
            }
            self.y -= LEADING;
            let mut name = line.name.clone();
            if show_ids {
                if let Some(id) = &line.id {
                    if id != &line.name {
                        name = format!("{name} ({id})");
                    }
                }
            }
            self.text_at(MARGIN, Font::Regular, BODY_SIZE, &clip(&name, 190.0));
            let cells = [
                line.requests.to_string(),
                usd(line.llm_cost_nanos_usd),
                usd(line.mcp_cost_nanos_usd),
                line.cost_usd.clone(),
            ];
            for ((right, _), cell) in COLUMNS.iter().zip(cells) {
                self.text_right(*right, Font::Regular, BODY_SIZE, &cell);
            }
        }
        self.gap();
    }

    /// The content streams, each with its footer.
    fn finish(mut self) -> Vec<String> {
        self.pages.push(self.current);
        let count = self.pages.len();
        self.pages
            .into_iter()
            .enumerate()
            .map(|(i, mut content)| {
                let footer = format!("Page {} of {count}", i + 1);
                let x = PAGE_WIDTH - MARGIN - text_width(&footer, 8.0);
                let _ = writeln!(
                    content,
                    "BT /F1 8.0 Tf {x:.2} {y:.2} Td ({}) Tj ET",
                    pdf_string(&footer),
                    y = MARGIN / 2.0,
                );
                content
            })
            .collect()
    }
}

/// Right edges and headings of the numeric columns.
const COLUMNS: [(f32, &str); 4] = [
    (320.0, "Requests"),
    (405.0, "LLM USD"),
    (485.0, "MCP USD"),
    (PAGE_WIDTH - MARGIN, "Total USD"),
];

/// Helvetica advance widths (1/1000 em) of the characters we right-align and clip; others are
/// taken as the average lower-case width.
fn char_width(c: char) -> f32 {
    match c {
        '0'..='9' | '$' => 556.0,
        '.' | ',' | ' ' | ':' | 'i' | 'j' | 'l' | 'I' | 't' | 'f' => 278.0,
        '-' | '(' | ')' | 'r' => 333.0,
        'm' | 'w' | 'M' | 'W' => 833.0,
        'A'..='Z' => 667.0,
        _ => 556.0,
    }
}

fn text_width(text: &str, size: f32) -> f32 {
    text.chars().map(char_width).sum::<f32>() * size / 1000.0
}

/// `text`, shortened with `...` to fit `width` points at the body size.
fn clip(text: &str, width: f32) -> String {
    if text_width(text, BODY_SIZE) <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    for c in text.chars() {
        if text_width(&out, BODY_SIZE) + char_width(c) * BODY_SIZE / 1000.0
            > width - text_width("...", BODY_SIZE)
        {
            break;
        }
        out.push(c);
    }
    out.push_str("...");
    out
}

/// A PDF literal string body: `\`, `(` and `)` escaped, Latin-1 kept (as octal escapes), anything
/// else `?`.
fn pdf_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '(' | ')' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            '\u{a0}'..='\u{ff}' => {
                let _ = write!(out, "\\{:03o}", u32::from(c));
            }
            _ => out.push('?'),
        }
    }
    out
}

/// Assembles the file: objects 1 (catalog), 2 (page tree), 3–4 (fonts), 5 (info), then a page
/// object and its content stream per page, the xref table and the trailer.
fn write_document(pages: &[String], title: &str) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(4096 + pages.iter().map(String::len).sum::<usize>());
    // The binary comment line tells transfer tools the file is binary.
    out.extend_from_slice(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n");
    let mut offsets: Vec<usize> = Vec::new();
    let mut object = |out: &mut Vec<u8>, body: &[u8]| {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", offsets.len()).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    };

    let page_ids: Vec<usize> = (0..pages.len()).map(|i| 6 + 2 * i).collect();
    let kids = page_ids
        .iter()
        .map(|id| format!("{id} 0 R"))
        .collect::<Vec<_>>()
        .join(" ");
    object(&mut out, b"<< /Type /Catalog /Pages 2 0 R >>");
    object(
        &mut out,
        format!("<< /Type /Pages /Kids [{kids}] /Count {} >>", pages.len()).as_bytes(),
    );
    object(
        &mut out,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    );
    object(
        &mut out,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    );
    object(
        &mut out,
        format!(
            "<< /Title ({}) /Producer (Odock) /CreationDate (D:{}Z) >>",
            pdf_string(title),
            chrono::Utc::now().format("%Y%m%d%H%M%S")
        )
        .as_bytes(),
    );
    for (content, page_id) in pages.iter().zip(&page_ids) {
        object(
            &mut out,
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] \
                 /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {} 0 R >>",
                page_id + 1
            )
            .as_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        stream.extend_from_slice(content.as_bytes());
        stream.extend_from_slice(b"\nendstream");
        object(&mut out, &stream);
    }

    let xref_at = out.len();
    let mut xref = format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1);
    for offset in &offsets {
        let _ = writeln!(xref, "{offset:010} 00000 n ");
    }
    let _ = write!(
        xref,
        "trailer\n<< /Size {} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref_at}\n%%EOF\n",
        offsets.len() + 1
    );
    out.extend_from_slice(xref.as_bytes());
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::{TimeZone, Utc};

    use super::super::{InvoiceTotals, Period};
    use super::*;

    /// Checks the file's structure: header, every xref offset at its `n 0 obj`, stream lengths,
    /// `startxref` at the table, and the page count. Returns the number of pages.
    pub(crate) fn check_structure(pdf: &[u8]) -> usize {
        assert!(pdf.starts_with(b"%PDF-1.4\n"));
        assert!(pdf.ends_with(b"%%EOF\n"));
        let text = String::from_utf8_lossy(pdf);
        let tail = &text[text.rfind("startxref\n").unwrap() + 10..];
        let xref_at: usize = tail.lines().next().unwrap().parse().unwrap();
        assert!(pdf[xref_at..].starts_with(b"xref\n0 "));
        let table = std::str::from_utf8(&pdf[xref_at..]).unwrap();
        let mut lines = table.lines().skip(1);
        let count: usize = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        // Every entry is exactly 20 bytes.
        let entries = &pdf[xref_at + table.find("0000000000 65535 f").unwrap()..];
        for i in 0..count {
            let entry = &entries[i * 20..(i + 1) * 20];
            let entry = std::str::from_utf8(entry).unwrap();
            assert!(entry.ends_with(" \n"), "{entry:?}");
            if i == 0 {
                continue;
            }
            let offset: usize = entry[..10].parse().unwrap();
            let expected = format!("{i} 0 obj\n");
            assert!(
                pdf[offset..].starts_with(expected.as_bytes()),
                "object {i} not at {offset}"
            );
        }
        assert!(table.contains(&format!("/Size {count}")));
        // Stream lengths are exact.
        let mut rest = &text[..];
        while let Some(at) = rest.find("/Length ") {
            let after = &rest[at + 8..];
            let length: usize = after[..after.find(' ').unwrap()].parse().unwrap();
            let start = after.find("stream\n").unwrap() + 7;
            assert_eq!(&after[start + length..start + length + 10], "\nendstream");
            rest = &after[start + length..];
        }
        let pages = text.matches("/Type /Page ").count();
        assert!(text.contains(&format!("/Count {pages} ")));
        pages
    }

    /// `pdftotext` output when poppler is installed (it is optional on developer machines).
    pub(crate) fn pdftotext(pdf: &[u8]) -> Option<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("invoice.pdf");
        std::fs::write(&path, pdf).unwrap();
        let output = std::process::Command::new("pdftotext")
            .arg("-layout")
            .arg(&path)
            .arg("-")
            .output()
            .ok()?;
        assert!(
            output.status.success(),
            "pdftotext failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Some(String::from_utf8(output.stdout).unwrap())
    }

    fn line(i: usize) -> InvoiceLine {
        InvoiceLine {
            id: Some(format!("ckey{i:04}")),
            name: format!("Key (number) {i} \\ with a rather long name that will not fit"),
            requests: i as i64,
            llm_cost_nanos_usd: 1_000_000_000 + i as i64,
            mcp_cost_nanos_usd: 5,
            cost_nanos_usd: 1_000_000_005 + i as i64,
            billable_tokens: 10,
            cost_usd: usd(1_000_000_005 + i as i64),
        }
    }

    fn invoice(lines: usize) -> Invoice {
        Invoice {
            organisation_id: "corg1".into(),
            period: Period {
                from: Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap(),
                to: Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap(),
            },
            team_ids: vec![],
            api_key_ids: vec![],
            generated_at: Utc.with_ymd_and_hms(2024, 6, 2, 8, 0, 0).unwrap(),
            totals: InvoiceTotals {
                requests: 12,
                llm_requests: 10,
                mcp_requests: 2,
                llm_cost_nanos_usd: 5_182_000,
                mcp_cost_nanos_usd: 11_000,
                cost_nanos_usd: 5_193_000,
                billable_tokens: 659,
                llm_cost_usd: usd(5_182_000),
                mcp_cost_usd: usd(11_000),
                cost_usd: usd(5_193_000),
            },
            by_team: vec![InvoiceLine {
                id: None,
                name: "Direct organisation API keys".into(),
                ..line(0)
            }],
            by_api_key: (0..lines).map(line).collect(),
            by_model: vec![],
            by_mcp_server: vec![],
        }
    }

    #[test]
    fn a_short_invoice_is_one_valid_page() {
        let pdf = render(&invoice(3));
        assert_eq!(check_structure(&pdf), 1);
        if let Some(text) = pdftotext(&pdf) {
            assert!(text.contains("Odock invoice"), "{text}");
            assert!(text.contains("$0.005193000"), "{text}");
            assert!(text.contains("Direct organisation API keys"), "{text}");
            assert!(text.contains("Page 1 of 1"), "{text}");
        }
    }

    #[test]
    fn a_long_invoice_spans_pages_with_repeated_headers() {
        let pdf = render(&invoice(200));
        let pages = check_structure(&pdf);
        assert!(pages >= 4, "{pages} pages");
        if let Some(text) = pdftotext(&pdf) {
            assert!(text.contains(&format!("Page {pages} of {pages}")), "{text}");
            assert!(text.contains("API key (continued)"), "{text}");
            assert!(text.contains("1.000000204"), "{text}");
        }
    }

    #[test]
    fn strings_are_escaped_and_clipped() {
        assert_eq!(pdf_string("a(b)c\\"), "a\\(b\\)c\\\\");
        assert_eq!(pdf_string("café ✓"), "caf\\351 ?");
        let long = "x".repeat(200);
        let clipped = clip(&long, 100.0);
        assert!(clipped.ends_with("..."));
        assert!(text_width(&clipped, BODY_SIZE) <= 100.0);
    }
}
