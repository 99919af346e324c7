//! Catalog rules as plain types and functions: identifiers, money, SKUs, slugs, product fields,
//! the category tree, list cursors and search-query sanitising. No I/O; unit-tested below.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use platform::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

macro_rules! id_type {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

/// A product's id is shared with every context that names products (cart, orders, reviews).
pub use contracts::kernel::ProductId;

id_type!(CategoryId, "A category (UUIDv7).");
id_type!(ReviewId, "A review (UUIDv7).");

/// Largest accepted price, in minor units (100 million in major units).
pub const MAX_PRICE_MINOR: i64 = 10_000_000_000;
pub const MAX_NAME_LEN: usize = 200;
pub const MAX_DESCRIPTION_LEN: usize = 10_000;
pub const MAX_BRAND_LEN: usize = 100;
pub const MAX_SLUG_LEN: usize = 120;
pub const MAX_ATTRIBUTES: usize = 30;
pub const MAX_ATTRIBUTE_KEY_LEN: usize = 40;
pub const MAX_ATTRIBUTE_VALUE_LEN: usize = 100;
pub const MAX_IMAGES: usize = 10;
pub const MAX_IMAGE_URL_LEN: usize = 2048;
pub const MAX_QUERY_LEN: usize = 200;
pub const MAX_QUERY_TERMS: usize = 10;
pub const MAX_REVIEW_TITLE_LEN: usize = 200;
pub const MAX_REVIEW_BODY_LEN: usize = 5_000;

/// Currencies and amounts are the kernel's: one rule for a price here, a cart line and an order.
pub use contracts::kernel::{Currency, Money};

pub use contracts::api::catalog::MoneyJson;

/// Validates a price: positive, at most [`MAX_PRICE_MINOR`], a known currency.
pub fn parse_money(field: &str, json: &MoneyJson, default_currency: Currency) -> Result<Money, Vec<FieldError>> {
    let mut errors = Vec::new();
    if json.amount <= 0 {
        errors.push(FieldError::new(format!("{field}.amount"), "must be greater than zero"));
    } else if json.amount > MAX_PRICE_MINOR {
        errors.push(FieldError::new(
            format!("{field}.amount"),
            format!("must be at most {MAX_PRICE_MINOR} (minor units)"),
        ));
    }
    let currency = match json.currency.as_deref() {
        None => Ok(default_currency),
        Some(c) => Currency::parse(c),
    };
    let currency = currency.map_err(|m| errors.push(FieldError::new(format!("{field}.currency"), m)));
    match (errors.is_empty(), currency) {
        (true, Ok(currency)) => Ok(Money {
            amount: json.amount,
            currency,
        }),
        _ => Err(errors),
    }
}

/// Normalises a SKU to upper case and checks it is 3–64 of `A-Z 0-9 -` (the kernel's [`Sku`]).
///
/// [`Sku`]: contracts::kernel::Sku
pub fn normalise_sku(text: &str) -> Result<String, String> {
    contracts::kernel::Sku::parse(text)
        .map(contracts::kernel::Sku::into_inner)
        .map_err(String::from)
}

/// Turns a name into a URL slug: lower-case ASCII letters and digits separated by single dashes.
/// Other scripts are transliterated first (`deunicode`: "Große Łódź" → "grosse-lodz"), so a
/// letter outside ASCII never just disappears from the slug.
pub fn slugify(text: &str) -> String {
    let ascii = deunicode::deunicode(text);
    let mut slug = String::with_capacity(ascii.len());
    let mut dash = false;
    for c in ascii.chars() {
        if c.is_ascii_alphanumeric() {
            if dash && !slug.is_empty() {
                slug.push('-');
            }
            dash = false;
            slug.push(c.to_ascii_lowercase());
        } else {
            dash = true;
        }
        if slug.len() >= MAX_SLUG_LEN {
            break;
        }
    }
    slug.truncate(MAX_SLUG_LEN);
    slug.trim_end_matches('-').to_owned()
}

/// A slug given by a client must already be in slug form.
pub fn validate_slug(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= MAX_SLUG_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
        && !text.contains("--");
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "must be 1 to {MAX_SLUG_LEN} lower-case letters, digits and single dashes"
        ))
    }
}

/// Checks a required text field: trimmed, non-empty, at most `max` characters.
pub fn required_text(field: &str, text: &str, max: usize, errors: &mut Vec<FieldError>) -> String {
    let t = text.trim();
    if t.is_empty() {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if t.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be at most {max} characters")));
    } else if platform::http::has_control_characters(t) {
        errors.push(FieldError::new(field, "must not contain control characters"));
    }
    t.to_owned()
}

/// Checks an optional text field (empty after trimming means absent).
pub fn optional_text(field: &str, text: Option<&str>, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    let t = text.map(str::trim).filter(|t| !t.is_empty())?;
    if t.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be at most {max} characters")));
    } else if platform::http::has_control_characters(t) {
        errors.push(FieldError::new(field, "must not contain control characters"));
    }
    Some(t.to_owned())
}

/// Attribute keys are lower case `a-z 0-9 _ -`; values free text. Bounded in count and length.
pub fn validate_attributes(
    attributes: &BTreeMap<String, String>,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, String> {
    if attributes.len() > MAX_ATTRIBUTES {
        errors.push(FieldError::new(
            "attributes",
            format!("at most {MAX_ATTRIBUTES} attributes"),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in attributes {
        let key = k.trim().to_ascii_lowercase();
        let field = format!("attributes.{k}");
        if key.is_empty()
            || key.len() > MAX_ATTRIBUTE_KEY_LEN
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            errors.push(FieldError::new(
                field,
                format!("keys must be 1 to {MAX_ATTRIBUTE_KEY_LEN} characters of a-z, 0-9, _ and -"),
            ));
            continue;
        }
        let value = v.trim();
        if value.is_empty() || value.chars().count() > MAX_ATTRIBUTE_VALUE_LEN {
            errors.push(FieldError::new(
                field,
                format!("values must be 1 to {MAX_ATTRIBUTE_VALUE_LEN} characters"),
            ));
            continue;
        }
        out.insert(key, value.to_owned());
    }
    out
}

/// Image URLs: http or https, at most [`MAX_IMAGES`].
pub fn validate_images(images: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    if images.len() > MAX_IMAGES {
        errors.push(FieldError::new("images", format!("at most {MAX_IMAGES} images")));
    }
    for (i, url) in images.iter().enumerate() {
        let lower = url.to_ascii_lowercase();
        let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
        let host_ok = rest.is_some_and(|r| {
            let host = r.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty()
        });
        if !host_ok || url.len() > MAX_IMAGE_URL_LEN || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            errors.push(FieldError::new(format!("images[{i}]"), "must be an http or https URL"));
        }
    }
    images.to_vec()
}

pub use contracts::api::catalog::{ProductStatus, ReviewStatus};

/// Star ratings are whole numbers 1 to 5.
pub fn validate_rating(rating: i64) -> Result<i64, FieldError> {
    if (1..=5).contains(&rating) {
        Ok(rating)
    } else {
        Err(FieldError::new("rating", "must be a whole number from 1 to 5"))
    }
}

/// Rating aggregates of a product: `histogram[0]` counts one-star reviews.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RatingSummary {
    pub histogram: [i64; 5],
}

impl RatingSummary {
    pub fn count(&self) -> i64 {
        self.histogram.iter().sum()
    }

    pub fn sum(&self) -> i64 {
        self.histogram.iter().enumerate().map(|(i, n)| (i as i64 + 1) * n).sum()
    }

    /// The mean rating, rounded to two decimals; 0 without reviews.
    pub fn average(&self) -> f64 {
        self.score() as f64 / 100.0
    }

    /// The mean times 100, rounded: the integer sort key for `sort=rating`.
    pub fn score(&self) -> i64 {
        let count = self.count();
        if count == 0 {
            0
        } else {
            (self.sum() * 100 + count / 2) / count
        }
    }
}

// ---- category tree -------------------------------------------------------------------------------

/// True when making `new_parent` the parent of `node` would put `node` under itself.
pub fn creates_cycle(
    parents: &HashMap<CategoryId, Option<CategoryId>>,
    node: CategoryId,
    new_parent: Option<CategoryId>,
) -> bool {
    let mut seen = HashSet::new();
    let mut current = new_parent;
    while let Some(c) = current {
        if c == node || !seen.insert(c) {
            return true;
        }
        current = parents.get(&c).copied().flatten();
    }
    false
}

/// `node` and every category below it.
pub fn descendants(parents: &HashMap<CategoryId, Option<CategoryId>>, node: CategoryId) -> Vec<CategoryId> {
    let mut children: HashMap<CategoryId, Vec<CategoryId>> = HashMap::new();
    for (child, parent) in parents {
        if let Some(p) = parent {
            children.entry(*p).or_default().push(*child);
        }
    }
    let mut out = vec![node];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            for k in kids {
                if !out.contains(k) {
                    out.push(*k);
                }
            }
        }
        i += 1;
    }
    out
}

/// The path from the root down to `node` (inclusive).
pub fn path_from_root(parents: &HashMap<CategoryId, Option<CategoryId>>, node: CategoryId) -> Vec<CategoryId> {
    let mut path = vec![node];
    let mut current = parents.get(&node).copied().flatten();
    while let Some(c) = current {
        if path.contains(&c) {
            break;
        }
        path.push(c);
        current = parents.get(&c).copied().flatten();
    }
    path.reverse();
    path
}

// ---- listing -------------------------------------------------------------------------------------

/// The orders a product list can be sorted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProductSort {
    /// Newest first (default without `q`).
    #[default]
    Newest,
    PriceAsc,
    PriceDesc,
    /// Best average rating first.
    Rating,
    /// Best text match first; only with `q` (the default with `q`).
    Relevance,
}

impl ProductSort {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Newest => "newest",
            Self::PriceAsc => "price_asc",
            Self::PriceDesc => "price_desc",
            Self::Rating => "rating",
            Self::Relevance => "relevance",
        }
    }

    fn from_code(s: &str) -> Option<Self> {
        Some(match s {
            "newest" => Self::Newest,
            "price_asc" => Self::PriceAsc,
            "price_desc" => Self::PriceDesc,
            "rating" => Self::Rating,
            "relevance" => Self::Relevance,
            _ => return None,
        })
    }
}

/// Where the previous page ended: the sort key of its last item and its id (relevance pages,
/// whose score is a float, carry an offset instead of a key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    pub sort: ProductSort,
    pub key: i64,
    pub id: Uuid,
}

impl ListCursor {
    /// Opaque to clients: base64url of `sort|key|id`.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}|{}", self.sort.as_str(), self.key, self.id.simple()))
    }

    /// Decodes a cursor made by [`ListCursor::encode`] for the same sort order; anything else is a
    /// 422 naming `cursor`.
    pub fn decode(text: &str, sort: ProductSort) -> Result<Self, Problem> {
        let bad = || Problem::invalid_field("cursor", "is not a cursor returned by this API for this sort order");
        let bytes = URL_SAFE_NO_PAD.decode(text.as_bytes()).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.split('|');
        let (Some(s), Some(k), Some(id), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let cursor_sort = ProductSort::from_code(s).ok_or_else(bad)?;
        if cursor_sort != sort {
            return Err(bad());
        }
        let key = k.parse::<i64>().map_err(|_| bad())?;
        if sort == ProductSort::Relevance && key < 0 {
            return Err(bad());
        }
        let id = Uuid::try_parse(id).map_err(|_| bad())?;
        Ok(Self { sort, key, id })
    }
}

/// A shopper's search text reduced to safe terms: letters and digits only, lower case, at most
/// [`MAX_QUERY_TERMS`]. Operators, quotes and punctuation are dropped, so nothing the user types
/// reaches the full-text engine as syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerms(Vec<String>);

impl SearchTerms {
    /// 422 naming `field` when the text is too long or holds no usable term.
    pub fn parse(field: &str, text: &str) -> Result<Self, Problem> {
        if text.chars().count() > MAX_QUERY_LEN {
            return Err(Problem::invalid_field(
                field,
                format!("must be at most {MAX_QUERY_LEN} characters"),
            ));
        }
        let mut terms: Vec<String> = Vec::new();
        for word in text.split(|c: char| !c.is_alphanumeric()) {
            let word: String = word.chars().flat_map(char::to_lowercase).collect();
            if word.is_empty() || word.chars().count() > 64 || terms.contains(&word) {
                continue;
            }
            terms.push(word);
            if terms.len() == MAX_QUERY_TERMS {
                break;
            }
        }
        if terms.is_empty() {
            return Err(Problem::invalid_field(field, "contains no searchable word"));
        }
        Ok(Self(terms))
    }

    pub fn terms(&self) -> &[String] {
        &self.0
    }

    /// FTS5 query: every term must match, the last one as a prefix (`"red" "sho"*`).
    pub fn fts5(&self, prefix_last: bool) -> String {
        let n = self.0.len();
        self.0
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if prefix_last && i + 1 == n {
                    format!("\"{t}\"*")
                } else {
                    format!("\"{t}\"")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// PostgreSQL `to_tsquery('simple', ...)` text: `red & sho:*`.
    pub fn tsquery(&self, prefix_last: bool, weight: &str) -> String {
        let n = self.0.len();
        self.0
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let prefix = if prefix_last && i + 1 == n { "*" } else { "" };
                if prefix.is_empty() && weight.is_empty() {
                    t.clone()
                } else {
                    format!("{t}:{prefix}{weight}")
                }
            })
            .collect::<Vec<_>>()
            .join(" & ")
    }
}

impl SearchTerms {
    /// The terms as one query text (`cotton shirt`).
    pub fn text(&self) -> String {
        self.0.join(" ")
    }

    /// These terms with each word replaced by its correction, when any word has one.
    pub fn corrected(&self, correct: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let mut changed = false;
        let words = self
            .0
            .iter()
            .map(|w| match correct(w) {
                Some(c) if c != *w => {
                    changed = true;
                    c
                }
                _ => w.clone(),
            })
            .collect();
        changed.then_some(Self(words))
    }
}

/// How many edits a word may be from a catalog word to count as a typo of it: none for short
/// words (too many near neighbours), one from 4 letters, two from 8.
pub fn typo_budget(word: &str) -> usize {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`: the optimal string
/// alignment distance, so `cotton`/`coton` and `shirt`/`shrit` are one apart.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// The catalog word `word` most likely misspells, among `candidates` (word, products using it):
/// the closest within [`typo_budget`], the most used among equals, then alphabetical. `None`
/// when the word is itself a catalog word or nothing is close enough.
pub fn closest_word<'a>(word: &str, candidates: &'a [(String, i64)]) -> Option<&'a str> {
    let budget = typo_budget(word);
    if budget == 0 || candidates.iter().any(|(c, _)| c == word) {
        return None;
    }
    candidates
        .iter()
        .filter(|(c, _)| c.chars().count().abs_diff(word.chars().count()) <= budget)
        .map(|(c, uses)| (edit_distance(word, c), -uses, c.as_str()))
        .filter(|(d, ..)| *d <= budget)
        .min()
        .map(|(.., c)| c)
}

/// The words of product names and brands with how many products use each, grouped by first
/// letter: a typed word is compared only with words sharing its first letter (a typo rarely
/// hits the first one, and the group is a fraction of the list).
#[derive(Debug, Default)]
pub struct Vocabulary {
    by_first_letter: HashMap<char, Vec<(String, i64)>>,
}

impl Vocabulary {
    pub fn new(words: impl IntoIterator<Item = (String, i64)>) -> Self {
        let mut by_first_letter: HashMap<char, Vec<(String, i64)>> = HashMap::new();
        for (word, uses) in words {
            if let Some(first) = word.chars().next() {
                by_first_letter.entry(first).or_default().push((word, uses));
            }
        }
        Self { by_first_letter }
    }

    /// How many words it holds.
    pub fn len(&self) -> usize {
        self.by_first_letter.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_first_letter.is_empty()
    }

    /// The word `word` most likely misspells ([`closest_word`] among its first letter's words).
    pub fn closest(&self, word: &str) -> Option<&str> {
        let first = word.chars().next()?;
        closest_word(word, self.by_first_letter.get(&first)?)
    }
}

/// Price buckets reported by facets, as `[from, to)` in minor units (`None` = unbounded).
pub const PRICE_BUCKETS: [(i64, Option<i64>); 7] = [
    (0, Some(2_500)),
    (2_500, Some(5_000)),
    (5_000, Some(10_000)),
    (10_000, Some(25_000)),
    (25_000, Some(50_000)),
    (50_000, Some(100_000)),
    (100_000, None),
];

/// Parses one attribute filter written `key:value` (the `attr` query parameter).
pub fn parse_attribute_filter(text: &str) -> Result<(String, String), Problem> {
    let bad = || Problem::invalid_field("attr", "must be key:value, e.g. attr=color:red");
    let (k, v) = text.split_once(':').ok_or_else(bad)?;
    let key = k.trim().to_ascii_lowercase();
    let value = v.trim();
    if key.is_empty()
        || value.is_empty()
        || key.len() > MAX_ATTRIBUTE_KEY_LEN
        || value.len() > MAX_ATTRIBUTE_VALUE_LEN
        || platform::http::has_control_characters(&key)
        || platform::http::has_control_characters(value)
    {
        return Err(bad());
    }
    Ok((key, value.to_owned()))
}

// ---- co-purchases ("customers who bought this also bought") ------------------------------------

/// Distinct products of one order that count towards co-purchases. An order of many products
/// says little about any pair, and each product pairs with every other (n × (n − 1) rows), so
/// only the first [`Self::MAX`] distinct products count: the cost per order stays bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoughtTogether(Vec<ProductId>);

impl BoughtTogether {
    pub const MAX: usize = 12;

    /// `None` when fewer than two distinct products remain (nothing to pair).
    pub fn of(products: impl IntoIterator<Item = ProductId>) -> Option<Self> {
        let mut seen = HashSet::new();
        let distinct: Vec<ProductId> = products
            .into_iter()
            .filter(|p| seen.insert(*p))
            .take(Self::MAX)
            .collect();
        (distinct.len() >= 2).then_some(Self(distinct))
    }

    pub fn products(&self) -> &[ProductId] {
        &self.0
    }

    /// Every ordered pair of different products: both directions, so each product finds the
    /// others.
    pub fn pairs(&self) -> impl Iterator<Item = (ProductId, ProductId)> + '_ {
        self.0
            .iter()
            .flat_map(|a| self.0.iter().filter(move |b| *b != a).map(move |b| (*a, *b)))
    }
}

/// Days over which an order's weight halves relative to a newer one.
pub const CO_PURCHASE_HALF_LIFE_DAYS: f64 = 90.0;
/// 2026-01-01T00:00:00Z: where weights are 1.
const CO_PURCHASE_EPOCH_UNIX: i64 = 1_767_225_600;

/// An order's recency weight, 2^(days since 2026-01-01 / 90): an order 90 days newer than
/// another counts twice as much. Weights only grow with time, so summing them per pair ranks
/// pairs by recency-weighted count without ever decaying stored rows (f64 holds the growth for
/// centuries). Kept within [2^-60, 2^600] so a wrong clock cannot make a row infinite.
pub fn co_purchase_weight(at: time::OffsetDateTime) -> f64 {
    // Seconds since the epoch are far below 2^53: exact as f64.
    #[allow(clippy::cast_precision_loss)]
    let days = (at.unix_timestamp() - CO_PURCHASE_EPOCH_UNIX) as f64 / 86_400.0;
    (days / CO_PURCHASE_HALF_LIFE_DAYS).clamp(-60.0, 600.0).exp2()
}

#[cfg(test)]
mod tests {
    #[test]
    fn typos_are_corrected_to_the_closest_common_catalog_word() {
        assert_eq!(edit_distance("coton", "cotton"), 1);
        assert_eq!(edit_distance("shrit", "shirt"), 1, "a swap is one edit");
        assert_eq!(edit_distance("jaket", "jacket"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("naïve", "naive"), 1, "letters, not bytes");
        let words = |list: &[(&str, i64)]| list.iter().map(|(w, n)| ((*w).to_owned(), *n)).collect::<Vec<_>>();
        let vocabulary = words(&[
            ("cotton", 40),
            ("carton", 3),
            ("button", 9),
            ("shirt", 12),
            ("shorts", 7),
            ("linen", 5),
        ]);
        assert_eq!(closest_word("cottn", &vocabulary), Some("cotton"));
        assert_eq!(closest_word("shrit", &vocabulary), Some("shirt"));
        assert_eq!(
            closest_word("cotton", &vocabulary),
            None,
            "a catalog word is not a typo"
        );
        assert_eq!(closest_word("tee", &vocabulary), None, "short words are not guessed at");
        assert_eq!(closest_word("xylophone", &vocabulary), None);
        // Equally close: the word more products use wins.
        let tie = words(&[("carton", 3), ("cotton", 40)]);
        assert_eq!(closest_word("corton", &tie), Some("cotton"));
        let grouped = Vocabulary::new(vocabulary.clone());
        assert_eq!(grouped.len(), 6);
        assert_eq!(grouped.closest("shrit"), Some("shirt"));
        assert_eq!(grouped.closest("cottn"), Some("cotton"));
        assert_eq!(grouped.closest("cotton"), None, "a catalog word is not a typo");
        assert_eq!(grouped.closest("kotton"), None, "the first letter is taken as typed");
        assert_eq!(grouped.closest(""), None);
        let terms = SearchTerms::parse("q", "Coton shrit").expect("terms");
        let fixed = terms
            .corrected(|w| closest_word(w, &vocabulary).map(str::to_owned))
            .expect("corrected");
        assert_eq!(fixed.text(), "cotton shirt");
        assert!(
            SearchTerms::parse("q", "cotton")
                .expect("t")
                .corrected(|_| None)
                .is_none()
        );
    }

    use super::*;

    #[test]
    fn text_fields_and_attribute_filters_refuse_control_characters() {
        let mut errors = Vec::new();
        required_text("name", "a\u{0}b", 100, &mut errors);
        optional_text("title", Some("a\u{1b}b"), 100, &mut errors);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "title"]);
        let mut errors = Vec::new();
        optional_text("body", Some("two\nlines"), 100, &mut errors);
        assert!(errors.is_empty());
        assert!(parse_attribute_filter("color:a\u{0}b").is_err());
        assert!(parse_attribute_filter("color:red").is_ok());
    }

    #[test]
    fn sku_is_normalised_and_checked() {
        assert_eq!(normalise_sku(" ab-12c ").expect("ok"), "AB-12C");
        assert!(normalise_sku("ab").is_err());
        assert!(normalise_sku("a b c").is_err());
        assert!(normalise_sku("ABC_1").is_err());
        assert!(normalise_sku(&"A".repeat(65)).is_err());
        assert!(normalise_sku(&"A".repeat(64)).is_ok());
    }

    #[test]
    fn slugify_makes_url_safe_slugs() {
        assert_eq!(
            slugify("Crème Brûlée -- Deluxe  Edition!"),
            "creme-brulee-deluxe-edition"
        );
        assert_eq!(slugify("  ¡¡Hi!! "), "hi");
        // Letters outside ASCII are transliterated, not dropped (was "gro-e-kaffeemuhle-od").
        assert_eq!(slugify("Große Kaffeemühle Łódź"), "grosse-kaffeemuhle-lodz");
        assert_eq!(slugify("Ελένη Жанна"), "elene-zhanna");
        assert_eq!(slugify("日本"), "ri-ben");
        assert_eq!(slugify("🙂 ☕"), "slight-smile-coffee", "symbols become their names");
        assert!(slugify(&"ab ".repeat(100)).len() <= MAX_SLUG_LEN);
        assert!(!slugify(&"ab ".repeat(100)).ends_with('-'));
        assert!(validate_slug("red-shoe-2").is_ok());
        for bad in ["", "-a", "a-", "a--b", "A", "a b", "a_b"] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prices_must_be_positive_bounded_and_in_a_known_currency() {
        let eur = Currency::parse("eur").expect("eur");
        let ok = parse_money(
            "price",
            &MoneyJson {
                amount: 1999,
                currency: None,
            },
            eur,
        )
        .expect("ok");
        assert_eq!(ok.currency.as_str(), "EUR");
        let usd = MoneyJson {
            amount: 5,
            currency: Some("usd".into()),
        };
        assert_eq!(parse_money("price", &usd, eur).expect("usd").currency.as_str(), "USD");
        for (amount, currency, field) in [
            (0, None, "price.amount"),
            (-5, None, "price.amount"),
            (MAX_PRICE_MINOR + 1, None, "price.amount"),
            (100, Some("XYZ"), "price.currency"),
            (100, Some("EURO"), "price.currency"),
        ] {
            let errors = parse_money(
                "price",
                &MoneyJson {
                    amount,
                    currency: currency.map(str::to_owned),
                },
                eur,
            )
            .expect_err("bad");
            assert_eq!(errors[0].field, field);
        }
        assert!(
            parse_money(
                "price",
                &MoneyJson {
                    amount: MAX_PRICE_MINOR,
                    currency: None
                },
                eur
            )
            .is_ok()
        );
    }

    #[test]
    fn attributes_and_images_are_bounded() {
        let mut errors = Vec::new();
        let attrs: BTreeMap<String, String> = [("Color".to_owned(), " Red ".to_owned())].into();
        let out = validate_attributes(&attrs, &mut errors);
        assert!(errors.is_empty());
        assert_eq!(out["color"], "Red");
        let many: BTreeMap<String, String> = (0..31).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        validate_attributes(&many, &mut errors);
        assert_eq!(errors[0].field, "attributes");
        let mut errors = Vec::new();
        validate_images(&["https://x.test/a.png".into(), "ftp://x".into()], &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "images[1]");
        let mut errors = Vec::new();
        validate_images(&vec!["https://x.test/a.png".to_owned(); 11], &mut errors);
        assert_eq!(errors[0].field, "images");
    }

    #[test]
    fn rating_summary_average_and_score() {
        let s = RatingSummary {
            histogram: [0, 0, 1, 0, 2],
        };
        assert_eq!(s.count(), 3);
        assert_eq!(s.score(), 433);
        assert!((s.average() - 4.33).abs() < 1e-9);
        assert_eq!(RatingSummary::default().average(), 0.0);
        assert!(validate_rating(0).is_err() && validate_rating(6).is_err() && validate_rating(5).is_ok());
    }

    #[test]
    fn cycles_in_the_category_tree_are_detected() {
        let (a, b, c, d) = (
            CategoryId::new(),
            CategoryId::new(),
            CategoryId::new(),
            CategoryId::new(),
        );
        let parents: HashMap<_, _> = [(a, None), (b, Some(a)), (c, Some(b)), (d, None)].into();
        assert!(creates_cycle(&parents, a, Some(c)));
        assert!(creates_cycle(&parents, a, Some(a)));
        assert!(creates_cycle(&parents, b, Some(c)));
        assert!(!creates_cycle(&parents, c, Some(a)));
        assert!(!creates_cycle(&parents, a, Some(d)));
        assert!(!creates_cycle(&parents, a, None));
        let mut below = descendants(&parents, a);
        below.sort();
        let mut expected = vec![a, b, c];
        expected.sort();
        assert_eq!(below, expected);
        assert_eq!(path_from_root(&parents, c), vec![a, b, c]);
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_a_422_naming_cursor() {
        let c = ListCursor {
            sort: ProductSort::PriceAsc,
            key: 1999,
            id: Uuid::now_v7(),
        };
        let text = c.encode();
        assert_eq!(ListCursor::decode(&text, ProductSort::PriceAsc).expect("ok"), c);
        let wrong_sort = ListCursor::decode(&text, ProductSort::Newest).expect_err("sort");
        assert_eq!(wrong_sort.errors[0].field, "cursor");
        for garbage in ["", "!!!", "AAAA", &URL_SAFE_NO_PAD.encode("price_asc|x|y")] {
            let p = ListCursor::decode(garbage, ProductSort::PriceAsc).expect_err("bad");
            assert_eq!(p.status.as_u16(), 422);
            assert_eq!(p.errors[0].field, "cursor");
        }
    }

    #[test]
    fn search_text_is_reduced_to_safe_terms() {
        let t = SearchTerms::parse("q", "Red \"shoes\" OR 1=1; DROP TABLE products--").expect("ok");
        assert_eq!(t.terms(), ["red", "shoes", "or", "1", "drop", "table", "products"]);
        assert_eq!(SearchTerms::parse("q", "wire*").expect("ok").fts5(true), "\"wire\"*");
        assert_eq!(
            SearchTerms::parse("q", "red sho").expect("ok").tsquery(true, ""),
            "red & sho:*"
        );
        assert_eq!(
            SearchTerms::parse("q", "Über").expect("ok").tsquery(true, "A"),
            "über:*A"
        );
        for bad in ["", "   ", "\"*()^:-", "''; --"] {
            assert_eq!(SearchTerms::parse("q", bad).expect_err("bad").errors[0].field, "q");
        }
        assert!(SearchTerms::parse("q", &"a".repeat(201)).is_err());
        assert_eq!(
            SearchTerms::parse("q", &"a b ".repeat(40)).expect("ok").terms().len(),
            2
        );
    }

    #[test]
    fn attribute_filters_parse() {
        assert_eq!(
            parse_attribute_filter("Color:Red").expect("ok"),
            ("color".to_owned(), "Red".to_owned())
        );
        assert!(parse_attribute_filter("color").is_err());
        assert!(parse_attribute_filter(":red").is_err());
    }

    #[test]
    fn an_order_pairs_its_distinct_products_both_ways_up_to_a_bound() {
        let ids: Vec<ProductId> = (0..20).map(|_| ProductId(Uuid::now_v7())).collect();
        assert_eq!(
            BoughtTogether::of([ids[0], ids[0]]),
            None,
            "one product has nobody to pair with"
        );
        let two = BoughtTogether::of([ids[0], ids[1], ids[0]]).expect("two");
        assert_eq!(two.pairs().collect::<Vec<_>>(), [(ids[0], ids[1]), (ids[1], ids[0])]);
        let many = BoughtTogether::of(ids.iter().copied()).expect("many");
        assert_eq!(many.products().len(), BoughtTogether::MAX);
        assert_eq!(many.pairs().count(), BoughtTogether::MAX * (BoughtTogether::MAX - 1));
    }

    #[test]
    fn newer_orders_weigh_more_doubling_every_half_life() {
        let epoch = time::macros::datetime!(2026-01-01 00:00 UTC);
        assert!((co_purchase_weight(epoch) - 1.0).abs() < 1e-12);
        let later = epoch + time::Duration::days(90);
        assert!((co_purchase_weight(later) - 2.0).abs() < 1e-9);
        assert!(co_purchase_weight(epoch - time::Duration::days(90)) < 1.0);
        let absurd = time::OffsetDateTime::from_unix_timestamp(253_402_300_799).expect("year 9999");
        assert!(co_purchase_weight(absurd).is_finite());
    }
}
