//! Invoices of paid orders: a printable HTML page and a PDF download.
//!
//! Pure and I/O-free: the caller loads the order, takes the invoice number (sequential, without
//! gaps, allocated by the store) and the seller's details (configuration), builds an
//! [`InvoiceDocument`] and renders it. Amounts are integers in minor units of `currency`;
//! [`format_money`] is the only place that turns them into text, with integer arithmetic.
//!
//! The PDF embeds a subset of DejaVu Sans (Latin, Greek, Cyrillic) with a ToUnicode map, so its
//! text prints and extracts as written; characters the font lacks (CJK, emoji) print as `?`.

use minijinja::{Environment, Value, context};
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, TextRenderingMode, UnicodeCmap};
use pdf_writer::{Content, Date, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The seller or the buyer as printed on the invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub name: String,
    /// Postal address, one printed line each (street, postcode and city, country, VAT id...).
    pub address_lines: Vec<String>,
}

/// One line of the invoice; amounts in minor units of the invoice currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub sku: String,
    pub description: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub line_total: i64,
}

/// Everything printed on an invoice. Amounts are minor units of `currency` (ISO 4217); the
/// totals are the order's own, never recomputed here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceDocument {
    pub invoice_number: String,
    pub order_number: String,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    pub seller: Party,
    pub buyer: Party,
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    pub subtotal: i64,
    /// Discount granted, as a positive amount (printed as a deduction).
    pub discount: i64,
    pub shipping: i64,
    pub tax: i64,
    /// Tax rate in basis points: 2000 = 20 %.
    pub tax_rate_bp: u32,
    pub total: i64,
    /// Sum of the refunds so far (positive); printed with the net amount when not zero.
    pub refunded: i64,
    /// How it was paid, e.g. "Visa •••• 4242".
    pub payment: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Money and numbers
// ---------------------------------------------------------------------------------------------

/// Number of decimals of a currency's minor unit (the kernel's ISO 4217 table).
pub use contracts::kernel::minor_digits as currency_exponent;

fn currency_symbol(code: &str) -> Option<&'static str> {
    match code {
        "EUR" => Some("€"),
        "USD" => Some("$"),
        "GBP" => Some("£"),
        "JPY" => Some("¥"),
        _ => None,
    }
}

/// `amount_minor` of `currency` as text: `€1,234.56`, `-$0.50`, `¥1,200`, `12.34 CHF`.
/// Integer arithmetic only (no floating point), valid for the whole `i64` range.
pub fn format_money(amount_minor: i64, currency: &str) -> String {
    let code = currency.trim().to_ascii_uppercase();
    let exponent = currency_exponent(&code);
    let magnitude = amount_minor.unsigned_abs();
    let scale = 10u64.pow(exponent);
    let major = group_thousands(magnitude / scale);
    let number = if exponent == 0 {
        major
    } else {
        format!("{major}.{:0width$}", magnitude % scale, width = exponent as usize)
    };
    let sign = if amount_minor < 0 { "-" } else { "" };
    match currency_symbol(&code) {
        Some(symbol) => format!("{sign}{symbol}{number}"),
        None => format!("{sign}{number} {code}"),
    }
}

fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate in basis points as a percentage: 2000 → "20%", 1950 → "19.5%", 725 → "7.25%".
pub fn format_rate_bp(bp: u32) -> String {
    let whole = bp / 100;
    match bp % 100 {
        0 => format!("{whole}%"),
        frac if frac.is_multiple_of(10) => format!("{whole}.{}%", frac / 10),
        frac => format!("{whole}.{frac:02}%"),
    }
}

fn issued_on(doc: &InvoiceDocument) -> String {
    let date = doc.issued_at.date();
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

/// A row of the totals block, shared by the HTML and the PDF so both print the same.
struct TotalRow {
    label: String,
    amount: String,
    grand: bool,
}

fn total_rows(doc: &InvoiceDocument) -> Vec<TotalRow> {
    let money = |amount: i64| format_money(amount, &doc.currency);
    let row = |label: &str, amount: i64, grand: bool| TotalRow {
        label: label.to_owned(),
        amount: money(amount),
        grand,
    };
    let mut rows = vec![row("Subtotal", doc.subtotal, false)];
    if doc.discount != 0 {
        rows.push(row("Discount", doc.discount.saturating_neg(), false));
    }
    rows.push(row("Shipping", doc.shipping, false));
    rows.push(row(
        &format!("Tax ({})", format_rate_bp(doc.tax_rate_bp)),
        doc.tax,
        false,
    ));
    rows.push(row("Total", doc.total, true));
    if doc.refunded != 0 {
        rows.push(row("Refunded", doc.refunded.saturating_neg(), false));
        rows.push(row("Net paid", doc.total.saturating_sub(doc.refunded), false));
    }
    rows
}

// ---------------------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------------------

const TEMPLATE_NAME: &str = "invoice.html";
const TEMPLATE: &str = include_str!("../templates/invoice.html");

/// Renders the template; its `.html` name turns on HTML auto-escaping of every value.
fn render_template(ctx: Value) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.add_template(TEMPLATE_NAME, TEMPLATE)?;
    env.get_template(TEMPLATE_NAME)?.render(ctx)
}

fn party_value(party: &Party) -> Value {
    context! { name => party.name.as_str(), address_lines => party.address_lines.clone() }
}

/// The invoice as a self-contained HTML page (inline CSS with print rules for A4, no external
/// resources). Every value from the document is HTML-escaped.
pub fn render_html(doc: &InvoiceDocument) -> String {
    let lines: Vec<Value> = doc
        .lines
        .iter()
        .map(|line| {
            context! {
                sku => line.sku.as_str(),
                description => line.description.as_str(),
                quantity => line.quantity,
                unit_price => format_money(line.unit_price, &doc.currency),
                line_total => format_money(line.line_total, &doc.currency),
            }
        })
        .collect();
    let totals: Vec<Value> = total_rows(doc)
        .into_iter()
        .map(|row| context! { label => row.label, amount => row.amount, grand => row.grand })
        .collect();
    let ctx = context! {
        invoice_number => doc.invoice_number.as_str(),
        order_number => doc.order_number.as_str(),
        issued_on => issued_on(doc),
        currency => doc.currency.trim().to_ascii_uppercase(),
        seller => party_value(&doc.seller),
        buyer => party_value(&doc.buyer),
        lines => lines,
        totals => totals,
        payment => doc.payment.as_deref(),
    };
    render_template(ctx).unwrap_or_else(|error| {
        // The template is compiled into the binary and covered by the tests; should it ever
        // fail, the page says so instead of showing half an invoice.
        tracing::error!(%error, invoice = %doc.invoice_number, "invoice template failed");
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Invoice</title>\
         </head><body><p>The invoice could not be rendered.</p></body></html>"
            .to_owned()
    })
}

// ---------------------------------------------------------------------------------------------
// PDF
// ---------------------------------------------------------------------------------------------

/// A4 in points.
const PAGE_WIDTH: f32 = 595.28;
const PAGE_HEIGHT: f32 = 841.89;
const MARGIN: f32 = 50.0;
const RIGHT: f32 = PAGE_WIDTH - MARGIN;
/// Lowest baseline for table rows and totals; the page footer sits below it.
const BOTTOM: f32 = MARGIN + 20.0;
const FOOTER_Y: f32 = 30.0;

/// The one embedded font, as the pages name it.
const FONT: Name<'static> = Name(b"F1");

const BODY_SIZE: f32 = 9.0;
const LEADING: f32 = 11.0;
const ROW_PADDING: f32 = 5.0;
const MAX_DESCRIPTION_LINES: usize = 3;
const MAX_ADDRESS_LINES: usize = 8;

/// Table columns: SKU and description are left-aligned at their x, the numbers right-aligned
/// at their right edge.
const COL_SKU: f32 = MARGIN;
const SKU_WIDTH: f32 = 80.0;
const COL_DESCRIPTION: f32 = MARGIN + 86.0;
const DESCRIPTION_WIDTH: f32 = 190.0;
const COL_QTY_RIGHT: f32 = 365.0;
const COL_UNIT_RIGHT: f32 = 455.0;
const COL_AMOUNT_RIGHT: f32 = RIGHT;

/// DejaVu Sans, from Debian's fonts-dejavu-core (licence in `fonts/LICENSE`): Latin, Greek and
/// Cyrillic, so names like "Łukasz Żółć", "Ελένη" or "Жанна" print as written. Each PDF embeds
/// only the glyphs it uses. Kept gzipped (760 → 380 KB of binary), unpacked at the first invoice.
const FONT_GZ: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf.gz");

fn font_data() -> &'static [u8] {
    static FONT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    // Compiled in and exercised by every PDF test: a bad file is a build defect.
    FONT.get_or_init(|| platform::gzip::gunzip(FONT_GZ).expect("the embedded DejaVu Sans unpacks"))
}

const ELLIPSIS: char = '…';
/// What a character the font has no glyph for prints as.
const MISSING: char = '?';

/// The parsed font: glyph lookup and advance widths for the layout.
struct FontMetrics {
    face: ttf_parser::Face<'static>,
    /// Font units to 1/1000 em (PDF glyph space).
    scale: f32,
}

fn metrics() -> &'static FontMetrics {
    static METRICS: std::sync::OnceLock<FontMetrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(|| {
        // Compiled in and exercised by every PDF test: a parse failure is a build defect.
        let face = ttf_parser::Face::parse(font_data(), 0).expect("the embedded DejaVu Sans parses");
        let scale = 1000.0 / f32::from(face.units_per_em());
        FontMetrics { face, scale }
    })
}

impl FontMetrics {
    fn glyph(&self, c: char) -> u16 {
        self.face
            .glyph_index(c)
            .or_else(|| self.face.glyph_index(MISSING))
            .map_or(0, |g| g.0)
    }

    /// Advance width in 1/1000 em.
    fn advance(&self, glyph: u16) -> f32 {
        f32::from(self.face.glyph_hor_advance(ttf_parser::GlyphId(glyph)).unwrap_or(0)) * self.scale
    }
}

/// Text as it will print: control characters become spaces, characters the font lacks `?`.
fn printable(text: &str) -> Vec<char> {
    let font = metrics();
    text.chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            c if font.face.glyph_index(c).is_some() => c,
            _ => MISSING,
        })
        .collect()
}

fn char_width(c: char) -> f32 {
    let font = metrics();
    font.advance(font.glyph(c))
}

fn text_width(text: &[char], size: f32) -> f32 {
    text.iter().map(|&c| char_width(c)).sum::<f32>() * size / 1000.0
}

/// `text` cut to fit `max_width`, ending in "…" when cut.
fn truncate(text: &[char], max_width: f32, size: f32) -> Vec<char> {
    if text_width(text, size) <= max_width {
        return text.to_vec();
    }
    let budget = max_width - text_width(&[ELLIPSIS], size);
    let mut out = Vec::new();
    let mut width = 0.0;
    for &c in text {
        let w = char_width(c) * size / 1000.0;
        if width + w > budget {
            break;
        }
        width += w;
        out.push(c);
    }
    while out.last() == Some(&' ') {
        out.pop();
    }
    out.push(ELLIPSIS);
    out
}

/// Greedy word wrap of `text` into at most `max_lines` lines of `max_width`; words longer than a
/// line are broken; the last line ends in "…" when text is left over.
fn wrap(text: &[char], max_width: f32, size: f32, max_lines: usize) -> Vec<Vec<char>> {
    let space = text_width(&[' '], size);
    let mut lines: Vec<Vec<char>> = Vec::new();
    let mut current: Vec<char> = Vec::new();
    let mut current_width = 0.0;
    let mut overflow = false;
    'words: for word in text.split(|&c| c == ' ').filter(|w| !w.is_empty()) {
        let mut word = word;
        loop {
            let word_width = text_width(word, size);
            let needed = if current.is_empty() {
                word_width
            } else {
                current_width + space + word_width
            };
            if needed <= max_width {
                if !current.is_empty() {
                    current.push(' ');
                }
                current.extend_from_slice(word);
                current_width = needed;
                continue 'words;
            }
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
                current_width = 0.0;
                if lines.len() == max_lines {
                    overflow = true;
                    break 'words;
                }
                continue;
            }
            // A single word wider than the line: take as many characters as fit (at least one).
            let mut taken = 0;
            let mut width = 0.0;
            for &c in word {
                let w = char_width(c) * size / 1000.0;
                if taken > 0 && width + w > max_width {
                    break;
                }
                width += w;
                taken += 1;
            }
            lines.push(word[..taken].to_vec());
            word = &word[taken..];
            if lines.len() == max_lines {
                overflow = !word.is_empty();
                break 'words;
            }
            if word.is_empty() {
                continue 'words;
            }
        }
    }
    if !current.is_empty() {
        if lines.len() == max_lines {
            overflow = true;
        } else {
            lines.push(current);
        }
    }
    if overflow && let Some(last) = lines.pop() {
        let mut cut = truncate(&last, max_width - text_width(&[ELLIPSIS], size), size);
        if cut.last() != Some(&ELLIPSIS) {
            cut.push(ELLIPSIS);
        }
        lines.push(cut);
    }
    if lines.is_empty() {
        lines.push(Vec::new());
    }
    lines
}

/// The glyphs a document uses, numbered in order of first use: those numbers are the CIDs the
/// pages show and the glyph ids of the embedded subset (CIDToGIDMap /Identity).
struct Glyphs {
    remapper: subsetter::GlyphRemapper,
    /// The character each CID stands for, for the ToUnicode map (text extraction, search).
    unicode: std::collections::BTreeMap<u16, char>,
}

impl Glyphs {
    fn new() -> Self {
        Self {
            remapper: subsetter::GlyphRemapper::new(),
            unicode: std::collections::BTreeMap::new(),
        }
    }

    /// `text` as a string of two-byte CIDs (Identity-H).
    fn encode(&mut self, text: &[char]) -> Vec<u8> {
        let font = metrics();
        let mut out = Vec::with_capacity(text.len() * 2);
        for &c in text {
            let cid = self.remapper.remap(font.glyph(c));
            self.unicode.entry(cid).or_insert(c);
            out.extend_from_slice(&cid.to_be_bytes());
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Weight {
    Regular,
    /// The one font drawn filled and outlined: bold without embedding a second font.
    Bold,
}

/// A table row laid out: its texts and its height.
struct Row {
    sku: Vec<char>,
    description: Vec<Vec<char>>,
    quantity: Vec<char>,
    unit_price: Vec<char>,
    line_total: Vec<char>,
}

impl Row {
    fn height(&self) -> f32 {
        self.description.len() as f32 * LEADING + ROW_PADDING
    }
}

/// Which rows go on a page, and whether the totals end it.
struct PagePlan {
    rows: std::ops::Range<usize>,
    totals: bool,
}

/// Vertical extent of the first page's header (seller, meta, buyer, payment).
fn first_header_height(seller: &[Vec<char>], buyer: &[Vec<char>], has_payment: bool) -> f32 {
    // Seller name (18) + its address lines, or the meta block on the right, whichever is taller.
    let seller_block = 22.0 + seller.len() as f32 * LEADING;
    let meta_block = 28.0 + 3.0 * 13.0;
    let top = seller_block.max(meta_block);
    // Gap, "Bill to" label, name, address lines.
    let buyer_block = 24.0 + 12.0 + 13.0 + buyer.len() as f32 * LEADING;
    let payment = if has_payment { 2.0 * LEADING } else { 0.0 };
    top + buyer_block + payment + 16.0
}

const CONTINUATION_HEADER_HEIGHT: f32 = 40.0;
const TABLE_HEADER_HEIGHT: f32 = 22.0;
const TOTAL_ROW_HEIGHT: f32 = 15.0;
/// Extra space above the grand total, for the rule over it.
const GRAND_TOTAL_GAP: f32 = 5.0;

fn plan_pages(rows: &[Row], first_header: f32, totals_height: f32) -> Vec<PagePlan> {
    let top = PAGE_HEIGHT - MARGIN;
    let mut pages = Vec::new();
    let mut start = 0;
    let mut first = true;
    loop {
        let header = if first {
            first_header
        } else {
            CONTINUATION_HEADER_HEIGHT
        };
        let mut y = top - header - TABLE_HEADER_HEIGHT;
        let mut end = start;
        while end < rows.len() && y - rows[end].height() >= BOTTOM {
            y -= rows[end].height();
            end += 1;
        }
        // A row taller than a whole page cannot happen (descriptions are capped), but never
        // loop forever: always take at least one row.
        if end == start && end < rows.len() {
            end += 1;
            y -= rows[start].height();
        }
        let totals = end == rows.len() && y - totals_height >= BOTTOM;
        pages.push(PagePlan {
            rows: start..end,
            totals,
        });
        first = false;
        start = end;
        if totals {
            return pages;
        }
        if start == rows.len() {
            // The totals did not fit under the last rows: they get a page of their own.
            pages.push(PagePlan {
                rows: start..start,
                totals: true,
            });
            return pages;
        }
    }
}

/// A page being drawn: its content stream and the document's glyphs.
struct Canvas<'a> {
    content: Content,
    glyphs: &'a mut Glyphs,
}

impl Canvas<'_> {
    fn text_at(&mut self, weight: Weight, size: f32, x: f32, y: f32, text: &[char]) {
        let shown = self.glyphs.encode(text);
        let content = &mut self.content;
        if weight == Weight::Bold {
            content
                .save_state()
                .set_text_rendering_mode(TextRenderingMode::FillStroke)
                .set_line_width(size * 0.035);
        }
        content
            .begin_text()
            .set_font(FONT, size)
            .next_line(x, y)
            .show(Str(&shown))
            .end_text();
        if weight == Weight::Bold {
            content.restore_state();
        }
    }

    fn text_right(&mut self, weight: Weight, size: f32, right: f32, y: f32, text: &[char]) {
        self.text_at(weight, size, right - text_width(text, size), y, text);
    }

    /// Text and outline (bold) in the same gray.
    fn gray(&mut self, level: f32) {
        self.content.set_fill_gray(level).set_stroke_gray(level);
    }

    fn hline(&mut self, y: f32, width: f32) {
        self.content
            .set_line_width(width)
            .move_to(MARGIN, y)
            .line_to(RIGHT, y)
            .stroke();
    }
}

fn chars(text: &str) -> Vec<char> {
    text.chars().collect()
}

/// Draws the table header with its top at `y`; returns the y below it.
fn table_header(canvas: &mut Canvas, y: f32) -> f32 {
    let baseline = y - 14.0;
    canvas.gray(0.35);
    canvas.text_at(Weight::Bold, 8.0, COL_SKU, baseline, &chars("SKU"));
    canvas.text_at(Weight::Bold, 8.0, COL_DESCRIPTION, baseline, &chars("Description"));
    canvas.text_right(Weight::Bold, 8.0, COL_QTY_RIGHT, baseline, &chars("Qty"));
    canvas.text_right(Weight::Bold, 8.0, COL_UNIT_RIGHT, baseline, &chars("Unit price"));
    canvas.text_right(Weight::Bold, 8.0, COL_AMOUNT_RIGHT, baseline, &chars("Amount"));
    canvas.gray(0.0);
    canvas.hline(y - TABLE_HEADER_HEIGHT + 2.0, 1.2);
    y - TABLE_HEADER_HEIGHT
}

fn draw_row(canvas: &mut Canvas, row: &Row, y: f32) -> f32 {
    let baseline = y - LEADING;
    canvas.text_at(Weight::Regular, BODY_SIZE, COL_SKU, baseline, &row.sku);
    for (i, line) in row.description.iter().enumerate() {
        let line_y = baseline - i as f32 * LEADING;
        canvas.text_at(Weight::Regular, BODY_SIZE, COL_DESCRIPTION, line_y, line);
    }
    canvas.text_right(Weight::Regular, BODY_SIZE, COL_QTY_RIGHT, baseline, &row.quantity);
    canvas.text_right(Weight::Regular, BODY_SIZE, COL_UNIT_RIGHT, baseline, &row.unit_price);
    canvas.text_right(Weight::Regular, BODY_SIZE, COL_AMOUNT_RIGHT, baseline, &row.line_total);
    let bottom = y - row.height();
    canvas.content.set_stroke_gray(0.85);
    canvas.hline(bottom + 1.0, 0.5);
    canvas.content.set_stroke_gray(0.0);
    bottom
}

/// The invoice as a PDF: A4, a subset of DejaVu Sans embedded (so any Latin, Greek or Cyrillic
/// text prints, and extracts through its ToUnicode map), a table of the lines that continues
/// over as many pages as needed (each with the table header and "Page i of n"), then the totals.
pub fn render_pdf(doc: &InvoiceDocument) -> Vec<u8> {
    let seller_lines: Vec<Vec<char>> = doc
        .seller
        .address_lines
        .iter()
        .take(MAX_ADDRESS_LINES)
        .map(|line| truncate(&printable(line), 250.0, BODY_SIZE))
        .collect();
    let buyer_lines: Vec<Vec<char>> = doc
        .buyer
        .address_lines
        .iter()
        .take(MAX_ADDRESS_LINES)
        .map(|line| truncate(&printable(line), 250.0, BODY_SIZE))
        .collect();
    let money = |amount: i64| printable(&format_money(amount, &doc.currency));
    let rows: Vec<Row> = doc
        .lines
        .iter()
        .map(|line| Row {
            sku: truncate(&printable(&line.sku), SKU_WIDTH, BODY_SIZE),
            description: wrap(
                &printable(&line.description),
                DESCRIPTION_WIDTH,
                BODY_SIZE,
                MAX_DESCRIPTION_LINES,
            ),
            quantity: chars(&line.quantity.to_string()),
            unit_price: money(line.unit_price),
            line_total: money(line.line_total),
        })
        .collect();
    let totals = total_rows(doc);
    let totals_height = 12.0 + totals.len() as f32 * TOTAL_ROW_HEIGHT + GRAND_TOTAL_GAP;
    let first_header = first_header_height(&seller_lines, &buyer_lines, doc.payment.is_some());
    let plan = plan_pages(&rows, first_header, totals_height);

    let page_count = plan.len();

    let catalog_id = Ref::new(1);
    let tree_id = Ref::new(2);
    let font_id = Ref::new(3);
    let cid_font_id = Ref::new(4);
    let info_id = Ref::new(5);
    let first_page = 6;
    let page_ids: Vec<Ref> = (0..page_count).map(|i| Ref::new(first_page + 2 * i as i32)).collect();
    let after_pages = first_page + 2 * page_count as i32;
    let descriptor_id = Ref::new(after_pages);
    let font_file_id = Ref::new(after_pages + 1);
    let to_unicode_id = Ref::new(after_pages + 2);

    let mut pdf = Pdf::new();
    pdf.catalog(catalog_id).pages(tree_id);
    pdf.pages(tree_id)
        .kids(page_ids.iter().copied())
        .count(page_count as i32);
    let date = doc.issued_at.date();
    let time = doc.issued_at.time();
    let offset = doc.issued_at.offset();
    let title = format!("Invoice {}", doc.invoice_number);
    pdf.document_info(info_id)
        .title(TextStr(&title))
        .author(TextStr(&doc.seller.name))
        .producer(TextStr("Emporium"))
        .creation_date(
            Date::new(u16::try_from(date.year().clamp(0, 9999)).unwrap_or(0))
                .month(u8::from(date.month()))
                .day(date.day())
                .hour(time.hour())
                .minute(time.minute())
                .second(time.second())
                .utc_offset_hour(offset.whole_hours())
                .utc_offset_minute(offset.minutes_past_hour().unsigned_abs()),
        );

    let mut glyphs = Glyphs::new();
    let invoice_number = printable(&doc.invoice_number);
    let top = PAGE_HEIGHT - MARGIN;
    for (index, page) in plan.iter().enumerate() {
        let page_id = page_ids[index];
        let content_id = Ref::new(page_id.get() + 1);
        let mut canvas = Canvas {
            content: Content::new(),
            glyphs: &mut glyphs,
        };
        let mut y = if index == 0 {
            draw_first_header(&mut canvas, doc, &seller_lines, &buyer_lines, top)
        } else {
            let baseline = top - 14.0;
            let mut heading = chars("Invoice ");
            heading.extend_from_slice(&invoice_number);
            heading.extend(" (continued)".chars());
            canvas.text_at(Weight::Bold, 12.0, MARGIN, baseline, &heading);
            let seller = truncate(&printable(&doc.seller.name), 200.0, BODY_SIZE);
            canvas.text_right(Weight::Regular, BODY_SIZE, RIGHT, baseline, &seller);
            top - CONTINUATION_HEADER_HEIGHT
        };
        if !page.rows.is_empty() {
            y = table_header(&mut canvas, y);
            for row in &rows[page.rows.clone()] {
                y = draw_row(&mut canvas, row, y);
            }
        }
        if page.totals {
            draw_totals(&mut canvas, &totals, y - 12.0);
        }
        let mut footer = chars("Invoice ");
        footer.extend_from_slice(&invoice_number);
        footer.extend(format!(" \u{b7} Page {} of {page_count}", index + 1).chars());
        canvas.gray(0.4);
        let x = (PAGE_WIDTH - text_width(&footer, 8.0)) / 2.0;
        canvas.text_at(Weight::Regular, 8.0, x, FOOTER_Y, &footer);
        canvas.gray(0.0);
        let content = canvas.content;

        let mut page_writer = pdf.page(page_id);
        page_writer
            .parent(tree_id)
            .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
            .contents(content_id);
        let mut resources = page_writer.resources();
        resources.fonts().pair(FONT, font_id);
        resources.finish();
        page_writer.finish();
        pdf.stream(content_id, &content.finish());
    }
    write_font(
        &mut pdf,
        &glyphs,
        FontRefs {
            font: font_id,
            cid_font: cid_font_id,
            descriptor: descriptor_id,
            file: font_file_id,
            to_unicode: to_unicode_id,
        },
    );
    pdf.finish()
}

struct FontRefs {
    font: Ref,
    cid_font: Ref,
    descriptor: Ref,
    file: Ref,
    to_unicode: Ref,
}

/// Embeds the glyphs `glyphs` used as a Type0 font over a CIDFontType2 (TrueType outlines), with
/// their widths and a ToUnicode map.
fn write_font(pdf: &mut Pdf, glyphs: &Glyphs, refs: FontRefs) {
    let font = metrics();
    let (program, cid_to_gid) = match subsetter::subset(font_data(), 0, &glyphs.remapper) {
        Ok(subset) => (subset, None),
        Err(error) => {
            // Never seen with the built-in font; should it happen, embed the whole font and map
            // each CID to its original glyph rather than print nothing.
            tracing::error!(?error, "subsetting the invoice font failed; embedding all of it");
            let map: Vec<u8> = glyphs.remapper.remapped_gids().flat_map(u16::to_be_bytes).collect();
            (font_data().to_vec(), Some(map))
        }
    };
    // The subset's name carries a tag derived from its glyphs (PDF 9.6.4), stable per glyph set so
    // the same invoice renders the same bytes.
    let tag: String = {
        let mut h: u32 = 2_166_136_261;
        for gid in glyphs.remapper.remapped_gids() {
            for b in gid.to_be_bytes() {
                h = (h ^ u32::from(b)).wrapping_mul(16_777_619);
            }
        }
        (0..6).map(|i| char::from(b'A' + ((h >> (i * 5)) % 26) as u8)).collect()
    };
    let base_font = format!("{tag}+DejaVuSans");
    let base_font = Name(base_font.as_bytes());

    pdf.type0_font(refs.font)
        .base_font(base_font)
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(refs.cid_font)
        .to_unicode(refs.to_unicode);

    let system_info = SystemInfo {
        registry: Str(b"Adobe"),
        ordering: Str(b"Identity"),
        supplement: 0,
    };
    let widths: Vec<f32> = glyphs.remapper.remapped_gids().map(|gid| font.advance(gid)).collect();
    let cid_to_gid_id = Ref::new(refs.to_unicode.get() + 1);
    let mut cid = pdf.cid_font(refs.cid_font);
    cid.subtype(CidFontType::Type2)
        .base_font(base_font)
        .system_info(system_info)
        .font_descriptor(refs.descriptor)
        .default_width(0.0);
    cid.widths().consecutive(0, widths);
    if cid_to_gid.is_some() {
        cid.cid_to_gid_map_stream(cid_to_gid_id);
    } else {
        cid.cid_to_gid_map_predefined(Name(b"Identity"));
    }
    cid.finish();

    let face = &font.face;
    let scale = |v: i16| f32::from(v) * font.scale;
    let bbox = face.global_bounding_box();
    pdf.font_descriptor(refs.descriptor)
        .name(base_font)
        .flags(FontFlags::NON_SYMBOLIC)
        .bbox(Rect::new(
            scale(bbox.x_min),
            scale(bbox.y_min),
            scale(bbox.x_max),
            scale(bbox.y_max),
        ))
        .italic_angle(0.0)
        .ascent(scale(face.ascender()))
        .descent(scale(face.descender()))
        .cap_height(scale(face.capital_height().unwrap_or(face.ascender())))
        .stem_v(80.0)
        .font_file2(refs.file);
    let length = i32::try_from(program.len()).unwrap_or(i32::MAX);
    pdf.stream(refs.file, &program).pair(Name(b"Length1"), length);

    let mut cmap = UnicodeCmap::new(Name(b"Emporium-UTF16"), system_info);
    for (&cid, &c) in &glyphs.unicode {
        cmap.pair(cid, c);
    }
    pdf.cmap(refs.to_unicode, &cmap.finish());
    if let Some(map) = cid_to_gid {
        pdf.stream(cid_to_gid_id, &map);
    }
}

/// Seller (left), "INVOICE" with number, order and date (right), then the buyer and payment.
/// Returns the y where the table starts.
fn draw_first_header(
    canvas: &mut Canvas,
    doc: &InvoiceDocument,
    seller_lines: &[Vec<char>],
    buyer_lines: &[Vec<char>],
    top: f32,
) -> f32 {
    let seller_name = truncate(&printable(&doc.seller.name), 260.0, 16.0);
    canvas.text_at(Weight::Bold, 16.0, MARGIN, top - 16.0, &seller_name);
    let mut y = top - 16.0 - 6.0;
    for line in seller_lines {
        y -= LEADING;
        canvas.text_at(Weight::Regular, BODY_SIZE, MARGIN, y, line);
    }
    let seller_bottom = y;

    canvas.text_right(Weight::Bold, 20.0, RIGHT, top - 18.0, &chars("INVOICE"));
    let meta = [
        ("Invoice no.", &doc.invoice_number),
        ("Order no.", &doc.order_number),
        ("Date", &issued_on(doc)),
    ];
    let mut meta_y = top - 28.0;
    for (label, value) in meta {
        meta_y -= 13.0;
        canvas.text_at(Weight::Regular, BODY_SIZE, 360.0, meta_y, &chars(label));
        let value = truncate(&printable(value), RIGHT - 415.0, BODY_SIZE);
        canvas.text_right(Weight::Bold, BODY_SIZE, RIGHT, meta_y, &value);
    }

    let mut y = seller_bottom.min(meta_y) - 24.0;
    canvas.gray(0.35);
    canvas.text_at(Weight::Bold, 8.0, MARGIN, y, &chars("BILL TO"));
    canvas.gray(0.0);
    y -= 13.0;
    let buyer_name = truncate(&printable(&doc.buyer.name), 250.0, 10.0);
    canvas.text_at(Weight::Bold, 10.0, MARGIN, y, &buyer_name);
    for line in buyer_lines {
        y -= LEADING;
        canvas.text_at(Weight::Regular, BODY_SIZE, MARGIN, y, line);
    }
    if let Some(payment) = &doc.payment {
        y -= 2.0 * LEADING;
        let text = truncate(&printable(&format!("Paid with {payment}")), RIGHT - MARGIN, BODY_SIZE);
        canvas.text_at(Weight::Regular, BODY_SIZE, MARGIN, y, &text);
    }
    y - 16.0
}

fn draw_totals(canvas: &mut Canvas, totals: &[TotalRow], top: f32) {
    let label_x = 330.0;
    let mut y = top;
    for row in totals {
        y -= TOTAL_ROW_HEIGHT;
        let weight = if row.grand { Weight::Bold } else { Weight::Regular };
        let size = if row.grand { 11.0 } else { BODY_SIZE };
        if row.grand {
            y -= GRAND_TOTAL_GAP;
            canvas
                .content
                .set_line_width(1.2)
                .move_to(label_x, y + 13.0)
                .line_to(RIGHT, y + 13.0)
                .stroke();
        }
        let label = truncate(&printable(&row.label), 110.0, size);
        canvas.text_at(weight, size, label_x, y, &label);
        canvas.text_right(weight, size, RIGHT, y, &printable(&row.amount));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn party(name: &str, lines: &[&str]) -> Party {
        Party {
            name: name.to_owned(),
            address_lines: lines.iter().map(|l| (*l).to_owned()).collect(),
        }
    }

    fn line(i: usize, description: &str) -> InvoiceLine {
        InvoiceLine {
            sku: format!("SKU-{i:04}"),
            description: description.to_owned(),
            quantity: 2,
            unit_price: 1250,
            line_total: 2500,
        }
    }

    fn document(lines: Vec<InvoiceLine>) -> InvoiceDocument {
        let subtotal: i64 = lines.iter().map(|l| l.line_total).sum();
        InvoiceDocument {
            invoice_number: "INV-2024-000042".to_owned(),
            order_number: "ORD-7F3A".to_owned(),
            issued_at: datetime!(2024-05-01 10:30:00 UTC),
            seller: party(
                "Emporium GmbH",
                &["Hauptstraße 1", "10115 Berlin", "Germany", "VAT DE123456789"],
            ),
            buyer: party("Zoë Müller", &["Rue de la Paix 5", "75002 Paris", "France"]),
            currency: "EUR".to_owned(),
            lines,
            subtotal,
            discount: 500,
            shipping: 495,
            tax: 1234,
            tax_rate_bp: 2000,
            total: subtotal - 500 + 495 + 1234,
            refunded: 0,
            payment: Some("Visa •••• 4242".to_owned()),
        }
    }

    fn pdf_text(bytes: &[u8]) -> (usize, String) {
        let parsed = lopdf::Document::load_mem(bytes).expect("the PDF parses");
        let pages: Vec<u32> = parsed.get_pages().keys().copied().collect();
        let text = parsed.extract_text(&pages).expect("text extracts");
        (pages.len(), text)
    }

    #[test]
    fn money_uses_the_currency_exponent_and_symbol() {
        assert_eq!(format_money(1234, "EUR"), "€12.34");
        assert_eq!(format_money(5, "EUR"), "€0.05");
        assert_eq!(format_money(0, "USD"), "$0.00");
        assert_eq!(format_money(-50, "usd"), "-$0.50");
        assert_eq!(format_money(123_456_789, "GBP"), "£1,234,567.89");
        assert_eq!(format_money(1200, "JPY"), "¥1,200");
        assert_eq!(format_money(1234, "CHF"), "12.34 CHF");
        assert_eq!(format_money(-100_000, "SEK"), "-1,000.00 SEK");
        assert_eq!(format_money(1234, "KWD"), "1.234 KWD");
        assert_eq!(format_money(999, "KRW"), "999 KRW");
        assert_eq!(format_money(i64::MIN, "EUR"), "-€92,233,720,368,547,758.08");
        assert_eq!(format_money(i64::MAX, "JPY"), "¥9,223,372,036,854,775,807");
    }

    #[test]
    fn rates_print_as_percentages() {
        assert_eq!(format_rate_bp(2000), "20%");
        assert_eq!(format_rate_bp(1950), "19.5%");
        assert_eq!(format_rate_bp(725), "7.25%");
        assert_eq!(format_rate_bp(5), "0.05%");
        assert_eq!(format_rate_bp(0), "0%");
    }

    #[test]
    fn html_escapes_user_input_and_shows_totals() {
        let mut doc = document(vec![line(1, "Lamp <b>bright</b> & \"warm\"")]);
        doc.buyer.name = "<script>alert('x')</script>".to_owned();
        doc.buyer.address_lines = vec!["<img src=x onerror=alert(1)>".to_owned()];
        doc.refunded = 1000;
        let html = render_html(&doc);

        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b>bright"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(
            html.contains("Lamp &lt;b&gt;bright&lt;&#x2f;b&gt; &amp; &quot;warm&quot;"),
            "{html}"
        );
        assert!(html.contains("INV-2024-000042"));
        assert!(html.contains("ORD-7F3A"));
        assert!(html.contains("2024-05-01"));
        assert!(html.contains("Hauptstraße 1"), "non-ASCII text passes through");
        assert!(html.contains("SKU-0001"));
        assert!(html.contains("€12.50"), "unit price");
        assert!(html.contains("€25.00"), "line total and subtotal");
        assert!(html.contains("-€5.00"), "discount");
        assert!(html.contains("€4.95"), "shipping");
        assert!(html.contains("Tax (20%)"));
        assert!(html.contains("€12.34"), "tax");
        assert!(html.contains("€37.29"), "total");
        assert!(html.contains("-€10.00"), "refunded");
        assert!(html.contains("€27.29"), "net paid");
        assert!(html.contains("Visa •••• 4242"));
        assert!(html.contains("@media print"));
        assert!(
            !html.contains("src=\"http") && !html.contains("href=\"http"),
            "self-contained"
        );
    }

    #[test]
    fn html_leaves_out_empty_discount_refund_and_payment() {
        let mut doc = document(vec![line(1, "Lamp")]);
        doc.discount = 0;
        doc.payment = None;
        let html = render_html(&doc);
        assert!(!html.contains("Discount"));
        assert!(!html.contains("Refunded"));
        assert!(!html.contains("Paid with"));
        assert!(html.contains("Total"));
    }

    #[test]
    fn pdf_is_well_formed_with_extractable_text() {
        let doc = document(vec![
            line(1, "Oak shelf (large) \\ natural"),
            line(2, "Desk lamp – brass, 40 cm"),
        ]);
        let bytes = render_pdf(&doc);
        assert!(bytes.starts_with(b"%PDF-"));
        assert!(bytes.trim_ascii_end().ends_with(b"%%EOF"));
        let (pages, text) = pdf_text(&bytes);
        assert_eq!(pages, 1, "{text}");
        assert!(text.contains("INV-2024-000042"), "{text}");
        assert!(text.contains("ORD-7F3A"), "{text}");
        assert!(text.contains("Oak shelf (large) \\ natural"), "{text}");
        assert!(text.contains("Desk lamp – brass, 40 cm"), "{text}");
        assert!(text.contains("Zoë Müller"), "{text}");
        assert!(text.contains("Hauptstraße 1"), "{text}");
        assert!(text.contains("€50.00"), "subtotal: {text}");
        assert!(text.contains("€62.29"), "total: {text}");
        assert!(text.contains("Visa •••• 4242"), "{text}");
        assert!(text.contains("Page 1 of 1"), "{text}");
        assert_eq!(bytes, render_pdf(&doc), "the same document renders the same bytes");
    }

    /// The text of a PDF as poppler's `pdftotext` reads it (Debian's poppler-utils; CI installs it
    /// in .ci/install-tools.sh). Without it the test is skipped with a note, except under
    /// `CI=true`, where a missing tool is a failure like a missing service.
    fn pdftotext(bytes: &[u8]) -> Option<String> {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("invoice.pdf");
        std::fs::write(&path, bytes).expect("write");
        let out = match std::process::Command::new("pdftotext")
            .args(["-enc", "UTF-8"])
            .arg(&path)
            .arg("-")
            .output()
        {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!(
                    "skipped: pdftotext is not installed (apt-get install poppler-utils, or bash .ci/install-tools.sh)"
                );
                return None;
            }
            Err(e) => panic!("pdftotext runs (apt-get install poppler-utils, or bash .ci/install-tools.sh): {e}"),
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "pdftotext failed: {stderr}");
        assert!(stderr.trim().is_empty(), "pdftotext complained: {stderr}");
        Some(String::from_utf8(out.stdout).expect("utf-8"))
    }

    #[test]
    fn pdf_prints_latin_greek_and_cyrillic_names() {
        let mut doc = document(vec![
            line(1, "Kaffeemühle Łódź"),
            line(2, "Чайник электрический"),
            line(3, "Κούπα καφέ"),
        ]);
        doc.buyer = party("Łukasz Żółć", &["ul. Świętokrzyska 12", "00-050 Warszawa", "Polska"]);
        doc.seller.name = "Ελένη & Жанна Ltd".to_owned();
        let bytes = render_pdf(&doc);
        if let Ok(path) = std::env::var("INVOICE_PDF_OUT") {
            std::fs::write(path, &bytes).expect("write the PDF for a look");
        }
        let Some(text) = pdftotext(&bytes) else { return };
        for want in [
            "Łukasz Żółć",
            "ul. Świętokrzyska 12",
            "Ελένη & Жанна Ltd",
            "Kaffeemühle Łódź",
            "Чайник электрический",
            "Κούπα καφέ",
            "Hauptstraße 1",
            "€87.29",
            "Visa •••• 4242",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        assert!(!text.contains('?'), "nothing replaced:\n{text}");
        // A subset, not the whole 760 kB font.
        assert!(bytes.len() < 120_000, "{} bytes", bytes.len());
        assert_eq!(bytes, render_pdf(&doc), "the same document renders the same bytes");
    }

    #[test]
    fn pdf_marks_characters_the_font_lacks() {
        let mut doc = document(vec![line(1, "Tea 茶 set")]);
        doc.buyer.name = "Ωmega (Ltd)".to_owned();
        let Some(text) = pdftotext(&render_pdf(&doc)) else {
            return;
        };
        assert!(text.contains("Tea ? set"), "{text}");
        assert!(text.contains("Ωmega (Ltd)"), "{text}");
    }

    #[test]
    fn pdf_paginates_long_invoices() {
        let lines: Vec<InvoiceLine> = (1..=80).map(|i| line(i, &format!("Item number {i}"))).collect();
        let doc = document(lines);
        let bytes = render_pdf(&doc);
        let (pages, text) = pdf_text(&bytes);
        assert!(pages >= 2, "80 lines need more than one page, got {pages}");
        assert!(text.contains(&format!("Page {pages} of {pages}")), "{text}");
        for i in 1..=80 {
            assert!(text.contains(&format!("Item number {i}\n")), "line {i} missing");
        }
        assert_eq!(text.matches("INVOICE").count(), 1, "full header on page one only");
        assert_eq!(text.matches("(continued)").count(), pages - 1);
        let table_headers = text.matches("Description").count();
        assert!(
            table_headers == pages || table_headers == pages - 1,
            "a table header on every page with rows: {table_headers} on {pages} pages"
        );
        // The totals come once, after the last line.
        let last_line = text.find("Item number 80\n").expect("last line");
        let total = text.find("€2,012.29").expect("total printed");
        assert!(total > last_line, "{text}");
        assert_eq!(text.matches("€2,012.29").count(), 1);
    }

    #[test]
    fn long_descriptions_wrap_and_are_capped() {
        let long = "word ".repeat(200);
        let lines = wrap(&printable(&long), DESCRIPTION_WIDTH, BODY_SIZE, 3);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2].last(), Some(&ELLIPSIS));
        for l in &lines {
            assert!(text_width(l, BODY_SIZE) <= DESCRIPTION_WIDTH + 0.01);
        }
        let unbroken = "x".repeat(300);
        let lines = wrap(&printable(&unbroken), DESCRIPTION_WIDTH, BODY_SIZE, 3);
        assert_eq!(lines.len(), 3);
        assert!(
            lines
                .iter()
                .all(|l| text_width(l, BODY_SIZE) <= DESCRIPTION_WIDTH + 0.01)
        );
        assert_eq!(
            wrap(&chars("short text"), DESCRIPTION_WIDTH, BODY_SIZE, 3),
            vec![chars("short text")]
        );
        assert_eq!(wrap(&[], DESCRIPTION_WIDTH, BODY_SIZE, 3), vec![Vec::<char>::new()]);
    }

    #[test]
    fn totals_alone_move_to_a_new_page() {
        // Find a line count whose rows fill the first page exactly, so the totals overflow.
        let rows_for = |n: usize| -> Vec<Row> {
            (0..n)
                .map(|_| Row {
                    sku: vec!['A'],
                    description: vec![vec!['d']],
                    quantity: vec!['1'],
                    unit_price: vec!['1'],
                    line_total: vec!['1'],
                })
                .collect()
        };
        let header = 200.0;
        let totals = 100.0;
        let n = (1..200)
            .find(|&n| {
                let plan = plan_pages(&rows_for(n), header, totals);
                plan.len() == 2 && plan[1].rows.is_empty()
            })
            .expect("some row count fills page one but leaves no room for the totals");
        let plan = plan_pages(&rows_for(n), header, totals);
        assert_eq!(plan[0].rows, 0..n);
        assert!(!plan[0].totals && plan[1].totals);
        // One row fewer: the totals fit under the rows on page one.
        let plan = plan_pages(&rows_for(n - 1), header, totals);
        assert_eq!(plan.len(), 1);
        assert!(plan[0].totals);
        // Many rows: every row on exactly one page, in order, totals once at the end.
        let plan = plan_pages(&rows_for(500), header, totals);
        let mut next = 0;
        for page in &plan {
            assert_eq!(page.rows.start, next);
            next = page.rows.end;
        }
        assert_eq!(next, 500);
        assert_eq!(plan.iter().filter(|p| p.totals).count(), 1);
        assert!(plan.last().is_some_and(|p| p.totals));
    }
}
