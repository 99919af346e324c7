//! Country names for the pages' country lists (checkout, the address book).

use serde::Serialize;

/// The shopper's countries by name. Codes not listed here show as the code.
const COUNTRY_NAMES: &[(&str, &str)] = &[
    ("AD", "Andorra"),
    ("AT", "Austria"),
    ("AU", "Australia"),
    ("BE", "Belgium"),
    ("BG", "Bulgaria"),
    ("BR", "Brazil"),
    ("CA", "Canada"),
    ("CH", "Switzerland"),
    ("CN", "China"),
    ("CY", "Cyprus"),
    ("CZ", "Czechia"),
    ("DE", "Germany"),
    ("DK", "Denmark"),
    ("EE", "Estonia"),
    ("ES", "Spain"),
    ("FI", "Finland"),
    ("FR", "France"),
    ("GB", "United Kingdom"),
    ("GR", "Greece"),
    ("HR", "Croatia"),
    ("HU", "Hungary"),
    ("IE", "Ireland"),
    ("IN", "India"),
    ("IS", "Iceland"),
    ("IT", "Italy"),
    ("JP", "Japan"),
    ("LI", "Liechtenstein"),
    ("LT", "Lithuania"),
    ("LU", "Luxembourg"),
    ("LV", "Latvia"),
    ("MC", "Monaco"),
    ("MT", "Malta"),
    ("MX", "Mexico"),
    ("NL", "Netherlands"),
    ("NO", "Norway"),
    ("NZ", "New Zealand"),
    ("PL", "Poland"),
    ("PT", "Portugal"),
    ("RO", "Romania"),
    ("SE", "Sweden"),
    ("SI", "Slovenia"),
    ("SK", "Slovakia"),
    ("TR", "Türkiye"),
    ("UA", "Ukraine"),
    ("US", "United States"),
];

/// "NL" → "Netherlands"; an unknown code stays as it is.
pub fn country_name(code: &str) -> String {
    COUNTRY_NAMES
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(code))
        .map_or_else(|| code.to_owned(), |(_, name)| (*name).to_owned())
}

/// A destination in the country list.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct CountryOption {
    pub name: String,
    pub code: String,
}

/// The destinations, by name.
pub fn country_options(codes: &[String]) -> Vec<CountryOption> {
    let mut options: Vec<CountryOption> = codes
        .iter()
        .map(|c| CountryOption {
            name: country_name(c),
            code: c.clone(),
        })
        .collect();
    options.sort();
    options
}
