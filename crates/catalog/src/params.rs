//! Query strings of the list, search and facet endpoints. Parsed by hand because filters repeat
//! (`brand=a&brand=b`, `attr=color:red&attr=size:m`); every bad value is a 422 naming the parameter.

use platform::Problem;
use uuid::Uuid;

use crate::domain::{CategoryId, MAX_PRICE_MINOR, ProductSort, parse_attribute_filter};

/// Everything the product list understands. Attribute filters are written `attr=key:value` or
/// `attr.key=value`; several values of one key are alternatives, different keys must all match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListParams {
    pub q: Option<String>,
    pub category: Option<CategoryId>,
    pub brands: Vec<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub attributes: Vec<(String, String)>,
    /// Average stars times 100.
    pub min_rating_score: Option<i64>,
    pub in_stock: bool,
    pub sort: Option<ProductSort>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
    /// `draft`, `active`, `archived` or `all` (staff only).
    pub status: Option<String>,
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, Problem> {
    value
        .trim()
        .parse::<T>()
        .map_err(|_| Problem::invalid_field(name, "must be a number"))
}

impl ListParams {
    pub fn parse(query: Option<&str>) -> Result<Self, Problem> {
        let mut p = ListParams::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let (key, value) = (key.as_ref(), value.as_ref());
            match key {
                "q" => p.q = Some(value.to_owned()),
                "category" => {
                    let id = Uuid::try_parse(value.trim())
                        .map_err(|_| Problem::invalid_field("category", "must be a category id"))?;
                    p.category = Some(CategoryId(id));
                }
                "brand" => {
                    let b = value.trim();
                    if b.is_empty() || b.len() > 100 {
                        return Err(Problem::invalid_field("brand", "must be 1 to 100 characters"));
                    }
                    if p.brands.len() >= 20 {
                        return Err(Problem::invalid_field("brand", "at most 20 brands"));
                    }
                    p.brands.push(b.to_owned());
                }
                "min_price" | "max_price" => {
                    let n: i64 = number(key, value)?;
                    if !(0..=MAX_PRICE_MINOR).contains(&n) {
                        return Err(Problem::invalid_field(
                            key,
                            format!("must be between 0 and {MAX_PRICE_MINOR} (minor units)"),
                        ));
                    }
                    if key == "min_price" {
                        p.min_price = Some(n);
                    } else {
                        p.max_price = Some(n);
                    }
                }
                "attr" => p.attributes.push(parse_attribute_filter(value)?),
                "min_rating" => {
                    let r: f64 = number(key, value)?;
                    if !(0.0..=5.0).contains(&r) {
                        return Err(Problem::invalid_field("min_rating", "must be between 0 and 5"));
                    }
                    p.min_rating_score = Some((r * 100.0).round() as i64);
                }
                "in_stock" => {
                    p.in_stock = match value {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(Problem::invalid_field("in_stock", "must be true or false")),
                    }
                }
                "sort" => {
                    let s = serde_json::from_value::<ProductSort>(serde_json::Value::String(value.to_owned()))
                        .map_err(|_| {
                            Problem::invalid_field("sort", "must be newest, price_asc, price_desc, rating or relevance")
                        })?;
                    p.sort = Some(s);
                }
                "cursor" => p.cursor = Some(value.to_owned()),
                "limit" => {
                    let n: u32 = number(key, value)?;
                    if !(1..=100).contains(&n) {
                        return Err(Problem::invalid_field("limit", "must be between 1 and 100"));
                    }
                    p.limit = Some(n);
                }
                "status" => {
                    if !matches!(value, "draft" | "active" | "archived" | "all") {
                        return Err(Problem::invalid_field(
                            "status",
                            "must be draft, active, archived or all",
                        ));
                    }
                    p.status = Some(value.to_owned());
                }
                other => match other.strip_prefix("attr.") {
                    Some(k) => p.attributes.push(parse_attribute_filter(&format!("{k}:{value}"))?),
                    None => return Err(Problem::invalid_field(other, "is not a known parameter")),
                },
            }
        }
        if p.attributes.len() > 20 {
            return Err(Problem::invalid_field("attr", "at most 20 attribute filters"));
        }
        if let (Some(min), Some(max)) = (p.min_price, p.max_price)
            && min > max
        {
            return Err(Problem::invalid_field("min_price", "must not exceed max_price"));
        }
        Ok(p)
    }

    /// A stable text of the parsed parameters, for cache keys: two different sets never share
    /// one. Each present parameter is a tag letter and its value; texts carry their length and
    /// numbers end with `;`, so no value can pass for the next tag. Built by hand: the `Debug`
    /// text it replaces cost a cached page more than the rest of the key's work together.
    pub fn cache_key(&self) -> String {
        fn text(key: &mut String, tag: char, value: &str) {
            key.push(tag);
            key.push_str(&value.len().to_string());
            key.push(':');
            key.push_str(value);
        }
        fn number(key: &mut String, tag: char, value: i64) {
            key.push(tag);
            key.push_str(&value.to_string());
            key.push(';');
        }
        let mut key = String::with_capacity(48);
        if let Some(q) = &self.q {
            text(&mut key, 'q', q);
        }
        if let Some(category) = self.category {
            key.push('c');
            key.push_str(category.0.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
        }
        for brand in &self.brands {
            text(&mut key, 'b', brand);
        }
        if let Some(min) = self.min_price {
            number(&mut key, 'm', min);
        }
        if let Some(max) = self.max_price {
            number(&mut key, 'M', max);
        }
        for (name, value) in &self.attributes {
            text(&mut key, 'a', name);
            text(&mut key, '=', value);
        }
        if let Some(score) = self.min_rating_score {
            number(&mut key, 'r', score);
        }
        if self.in_stock {
            key.push('i');
        }
        if let Some(sort) = self.sort {
            text(&mut key, 'o', sort.as_str());
        }
        if let Some(cursor) = &self.cursor {
            text(&mut key, 'k', cursor);
        }
        if let Some(limit) = self.limit {
            number(&mut key, 'l', i64::from(limit));
        }
        if let Some(status) = &self.status {
            text(&mut key, 's', status);
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_parameters_never_share_a_cache_key() {
        let queries = [
            "",
            "q=ab",
            "q=a&brand=b",
            "brand=a&brand=b",
            "brand=a%2Cb",
            "brand=1:a",
            "q=1:a",
            "attr=color:red",
            "attr=color:r&attr=ed:x",
            "min_price=1",
            "max_price=1",
            "min_price=1&max_price=10",
            "min_price=11&max_price=100",
            "in_stock=true",
            "sort=price_asc",
            "sort=price_desc",
            "limit=5",
            "limit=50",
            "status=all",
            "q=limit",
        ];
        let keys: Vec<String> = queries
            .iter()
            .map(|q| ListParams::parse(Some(q)).expect(q).cache_key())
            .collect();
        for (i, a) in keys.iter().enumerate() {
            for (j, b) in keys.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "{:?} and {:?}", queries[i], queries[j]);
            }
        }
        // The same parameters, however spelt, share one.
        let spelt = |q: &str| ListParams::parse(Some(q)).expect(q).cache_key();
        assert_eq!(spelt("attr=color:red&limit=5"), spelt("limit=5&attr.color=red"));
    }

    #[test]
    fn repeated_filters_and_both_attribute_spellings_parse() {
        let p = ListParams::parse(Some(
            "brand=Acme&brand=Zed&attr=color:red&attr.size=M&min_price=100&max_price=900&in_stock=true&sort=price_asc&limit=5",
        ))
        .expect("ok");
        assert_eq!(p.brands, ["Acme", "Zed"]);
        assert_eq!(
            p.attributes,
            [("color".into(), "red".into()), ("size".into(), "M".into())]
        );
        assert_eq!((p.min_price, p.max_price, p.in_stock), (Some(100), Some(900), true));
        assert_eq!(p.sort, Some(ProductSort::PriceAsc));
        assert_eq!(p.limit, Some(5));
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for (query, field) in [
            ("category=x", "category"),
            ("min_price=-1", "min_price"),
            ("max_price=abc", "max_price"),
            ("min_price=10&max_price=5", "min_price"),
            ("attr=color", "attr"),
            ("min_rating=6", "min_rating"),
            ("in_stock=maybe", "in_stock"),
            ("sort=cheapest", "sort"),
            ("limit=0", "limit"),
            ("status=deleted", "status"),
            ("colour=red", "colour"),
        ] {
            let p = ListParams::parse(Some(query)).expect_err(query);
            assert_eq!(p.errors[0].field, field, "{query}");
        }
    }
}
