//! A realistic, deterministic catalog for demos and load tests: a three-level category tree,
//! brands, attributes (colour, size, material), prices with occasional compare-at prices, and a
//! few reviews per product with plausible ratings. Written with multi-row inserts, a thousand
//! products per transaction, each with its `catalog.product.created` event in the outbox.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use contracts::events::catalog::{self as events, ProductCreated};
use platform::events::Event;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Catalog;
use crate::domain::{CategoryId, Money, ProductId, ProductStatus, RatingSummary, ReviewId, ReviewStatus, slugify};
use crate::store::{Category, Product, Review, SeedBatch};

/// Products per transaction.
const BATCH: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedReport {
    pub products: usize,
    /// Every seeded SKU, in order (the CLI gives them initial stock).
    pub skus: Vec<String>,
    pub categories: usize,
    pub reviews: usize,
    pub elapsed: Duration,
}

/// "Running Shoes" → "Running Shoe", "Knives" → "Knife"; garments named only in the plural
/// ("Jeans") stay as they are.
fn singular(plural: &str) -> String {
    let (head, last) = plural.rsplit_once(' ').map_or(("", plural), |(h, l)| (h, l));
    let word = match last {
        "Jeans" | "Trousers" | "Shorts" => last.to_owned(),
        "Knives" => "Knife".to_owned(),
        "Shelves" => "Shelf".to_owned(),
        "Watches" => "Watch".to_owned(),
        "Lenses" => "Lens".to_owned(),
        other => other.strip_suffix('s').unwrap_or(other).to_owned(),
    };
    if head.is_empty() {
        word
    } else {
        format!("{head} {word}")
    }
}

/// splitmix64: small, fast, and the same sequence everywhere for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        out
    }

    /// A UUIDv7 at `millis` with deterministic random bits, so ids still sort by creation.
    fn uuid_v7(&mut self, millis: u64) -> Uuid {
        uuid::Builder::from_unix_timestamp_millis(millis, &self.bytes::<10>()).into_uuid()
    }
}

struct Department {
    name: &'static str,
    groups: &'static [(&'static str, &'static [&'static str])],
    materials: &'static [&'static str],
    /// Price range in whole currency units.
    price: (i64, i64),
}

const DEPARTMENTS: &[Department] = &[
    Department {
        name: "Clothing",
        groups: &[
            ("Tops", &["T-Shirts", "Shirts", "Sweaters"]),
            ("Bottoms", &["Jeans", "Trousers", "Shorts"]),
            ("Outerwear", &["Jackets", "Coats", "Raincoats"]),
            ("Shoes", &["Sneakers", "Boots", "Sandals"]),
        ],
        materials: &["cotton", "wool", "linen", "denim", "leather", "polyester"],
        price: (9, 250),
    },
    Department {
        name: "Electronics",
        groups: &[
            ("Audio", &["Headphones", "Speakers", "Earbuds"]),
            ("Computers", &["Laptops", "Monitors", "Keyboards"]),
            ("Phones", &["Smartphones", "Chargers", "Cases"]),
            ("Cameras", &["Action Cameras", "Lenses", "Tripods"]),
        ],
        materials: &["aluminium", "plastic", "steel", "glass", "carbon"],
        price: (15, 2500),
    },
    Department {
        name: "Home",
        groups: &[
            ("Kitchen", &["Cookware", "Knives", "Tableware"]),
            ("Furniture", &["Chairs", "Tables", "Shelves"]),
            ("Bedding", &["Duvets", "Pillows", "Sheets"]),
            ("Lighting", &["Lamps", "Ceiling Lights", "Bulbs"]),
        ],
        materials: &["oak", "steel", "ceramic", "cotton", "glass", "bamboo"],
        price: (5, 900),
    },
    Department {
        name: "Sports",
        groups: &[
            ("Running", &["Running Shoes", "Running Jackets", "Watches"]),
            ("Cycling", &["Helmets", "Bike Lights", "Gloves"]),
            ("Fitness", &["Yoga Mats", "Dumbbells", "Resistance Bands"]),
            ("Outdoor", &["Tents", "Backpacks", "Sleeping Bags"]),
        ],
        materials: &["nylon", "rubber", "steel", "polyester", "foam"],
        price: (8, 600),
    },
    Department {
        name: "Beauty",
        groups: &[
            ("Skincare", &["Cleansers", "Moisturisers", "Serums"]),
            ("Hair", &["Shampoo", "Conditioner", "Hair Oil"]),
            ("Fragrance", &["Perfume", "Eau de Toilette", "Body Mist"]),
        ],
        materials: &["organic", "vegan", "natural", "mineral"],
        price: (4, 180),
    },
    Department {
        name: "Books",
        groups: &[
            ("Fiction", &["Novels", "Crime", "Science Fiction"]),
            ("Non-Fiction", &["History", "Science", "Cookbooks"]),
            ("Children", &["Picture Books", "Young Adult", "Activity Books"]),
        ],
        materials: &["hardcover", "paperback"],
        price: (5, 60),
    },
];

const BRANDS: &[&str] = &[
    "Acme",
    "Northwind",
    "Lumen",
    "Kestrel",
    "Orbit",
    "Fjord",
    "Solace",
    "Pinnacle",
    "Verdant",
    "Copperline",
    "Halcyon",
    "Tundra",
    "Marlow",
    "Zephyr",
    "Ironbark",
    "Bluefin",
];
const ADJECTIVES: &[&str] = &[
    "Classic",
    "Essential",
    "Premium",
    "Lightweight",
    "Everyday",
    "Vintage",
    "Modern",
    "Compact",
    "Deluxe",
    "Urban",
    "Rugged",
    "Slim",
    "Eco",
    "Pro",
    "Soft",
    "Heritage",
];
const COLORS: &[&str] = &[
    "black", "white", "red", "blue", "green", "grey", "navy", "beige", "yellow", "pink",
];
const SIZES: &[&str] = &["xs", "s", "m", "l", "xl"];
const REVIEW_TITLES: &[(&str, i64)] = &[
    ("Disappointing", 1),
    ("Not great", 2),
    ("Does the job", 3),
    ("Good value", 4),
    ("Really happy with it", 4),
    ("Excellent", 5),
    ("Love it", 5),
];

/// The leaf categories to put products in: the existing leaves, or a freshly created tree.
async fn leaf_categories(catalog: &Catalog, rng: &mut Rng) -> anyhow::Result<(Vec<(Category, usize)>, usize)> {
    let store = catalog.service().store().clone();
    let existing = store.categories().await?;
    if !existing.is_empty() {
        let leaves: Vec<(Category, usize)> = existing
            .iter()
            .filter(|c| !existing.iter().any(|o| o.parent_id == Some(c.id)))
            .map(|c| (c.clone(), department_of(&existing, c)))
            .collect();
        return Ok((leaves, 0));
    }
    let now = platform::clock::now();
    let mut created = 0;
    let mut leaves = Vec::new();
    for (d, dept) in DEPARTMENTS.iter().enumerate() {
        let root = new_category(rng, dept.name, None, now);
        store.insert_category(&root).await?;
        created += 1;
        for (group, kinds) in dept.groups {
            let mid = new_category(rng, group, Some(root.id), now);
            store.insert_category(&mid).await?;
            created += 1;
            for kind in *kinds {
                let leaf = new_category(rng, kind, Some(mid.id), now);
                store.insert_category(&leaf).await?;
                created += 1;
                leaves.push((leaf, d));
            }
        }
    }
    Ok((leaves, created))
}

/// Which of [`DEPARTMENTS`] an existing category belongs to (by its root's name), for naming.
fn department_of(all: &[Category], c: &Category) -> usize {
    let mut root = c;
    for _ in 0..64 {
        match root.parent_id.and_then(|p| all.iter().find(|o| o.id == p)) {
            Some(parent) => root = parent,
            None => break,
        }
    }
    DEPARTMENTS.iter().position(|d| d.name == root.name).unwrap_or(0)
}

fn new_category(rng: &mut Rng, name: &str, parent: Option<CategoryId>, now: OffsetDateTime) -> Category {
    let mut slug = slugify(name);
    if let Some(p) = parent {
        // Leaf names repeat across departments ("Gloves"): keep slugs unique.
        slug = format!("{slug}-{}", &p.0.simple().to_string()[24..]);
    }
    Category {
        id: CategoryId(rng.uuid_v7(now.unix_timestamp() as u64 * 1000)),
        parent_id: parent,
        name: name.to_owned(),
        slug,
        description: format!("{name} from brands we trust."),
        created_at: now,
        updated_at: now,
        version: 1,
    }
}

/// Loads `count` products (deterministic for a given `rng_seed`) into the catalog, reporting
/// progress as `(done, count)` after every transaction.
pub async fn seed_products(
    catalog: &Catalog,
    count: usize,
    rng_seed: u64,
    progress: &dyn Fn(usize, usize),
) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    let mut rng = Rng(rng_seed);
    let (leaves, categories) = leaf_categories(catalog, &mut rng).await?;
    anyhow::ensure!(!leaves.is_empty(), "no leaf category to put products in");
    let service = catalog.service();
    let store = service.store().clone();
    let currency = service.config().default_currency;
    let tag = format!("{:04X}", rng_seed % 0x1_0000);
    // A fixed clock keeps the catalog identical run after run; ids still sort by creation.
    let base_millis: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let mut reviews_total = 0;
    let mut skus = Vec::with_capacity(count);
    let mut done = 0;
    while done < count {
        let n = BATCH.min(count - done);
        let mut batch = SeedBatch::default();
        for i in done..done + n {
            let millis = base_millis + i as u64 * 1000;
            let at = OffsetDateTime::from_unix_timestamp((millis / 1000) as i64)?;
            let (leaf, d) = rng.pick(&leaves).clone();
            let dept = &DEPARTMENTS[d];
            let brand = *rng.pick(BRANDS);
            let adjective = *rng.pick(ADJECTIVES);
            let material = *rng.pick(dept.materials);
            let color = *rng.pick(COLORS);
            let kind = singular(&leaf.name);
            let name = format!("{brand} {adjective} {} {kind}", capitalise(material));
            let mut attributes = BTreeMap::from([
                ("color".to_owned(), color.to_owned()),
                ("material".to_owned(), material.to_owned()),
            ]);
            if d == 0 || d == 3 {
                attributes.insert("size".to_owned(), rng.pick(SIZES).to_string());
            }
            let (lo, hi) = dept.price;
            // Skewed towards the cheap end, with .99 / .49 / .00 endings.
            let span = (hi - lo).max(1) as u64;
            let units = lo + ((rng.next() % span) * (rng.next() % span) / span) as i64;
            let cents = *rng.pick(&[99, 49, 0, 95]);
            let amount = (units * 100 + cents).max(100);
            let compare_at = rng
                .chance(20)
                .then(|| amount + amount * (10 + rng.below(40) as i64) / 100);
            let quality = 2 + rng.below(4) as i64; // 2..=5: the product's "true" rating
            let mut summary = RatingSummary::default();
            let id = ProductId(rng.uuid_v7(millis));
            for r in 0..rng.below(6) {
                let rating = (quality + rng.below(3) as i64 - 1).clamp(1, 5);
                summary.histogram[(rating - 1) as usize] += 1;
                let titles: Vec<&(&str, i64)> = REVIEW_TITLES.iter().filter(|(_, s)| *s == rating).collect();
                let title = titles.get(rng.below(titles.len())).map_or("Review", |t| t.0);
                batch.reviews.push(Review {
                    id: ReviewId(rng.uuid_v7(millis + 1 + r as u64)),
                    product_id: id,
                    user_id: Uuid::from_bytes(rng.bytes::<16>()),
                    rating,
                    title: title.to_owned(),
                    body: format!("{title}. The {} {kind} is {}.", material, adjective.to_lowercase()),
                    status: ReviewStatus::Visible,
                    verified_purchase: false,
                    author_erased: false,
                    created_at: at,
                    updated_at: at,
                });
            }
            let status = if rng.chance(3) {
                ProductStatus::Draft
            } else if rng.chance(2) {
                ProductStatus::Archived
            } else {
                ProductStatus::Active
            };
            let sku = format!("{}-{tag}-{i:07}", &slugify(dept.name).to_ascii_uppercase()[..3]);
            skus.push(sku.clone());
            let product = Product {
                id,
                slug: format!("{}-{}", slugify(&name), sku.to_ascii_lowercase()),
                sku,
                name,
                description: format!(
                    "The {adjective} {kind} by {brand}, made of {material}. A {color} favourite in {}.",
                    leaf.name
                ),
                status,
                price: Money { amount, currency },
                compare_at,
                brand: Some(brand.to_owned()),
                category_id: Some(leaf.id),
                attributes,
                // No made-up photo URLs: they would point browsers at a host that does not
                // exist. The storefront draws a placeholder for products without pictures.
                images: Vec::new(),
                rating: summary,
                available: 0,
                created_at: at,
                updated_at: at,
                version: 1,
            };
            // Seeded products' events carry no version (consumers need none on creation).
            batch.events.push(Event::of(
                id.to_string(),
                &ProductCreated(events::Product {
                    id: id.0,
                    sku: product.sku.to_string(),
                    name: product.name.clone(),
                    status: status.as_str().to_owned(),
                    price: events::Price {
                        amount,
                        currency: currency.to_string(),
                    },
                    version: None,
                }),
            ));
            batch.products.push(product);
        }
        reviews_total += batch.reviews.len();
        store.insert_seed_batch(&batch).await?;
        done += n;
        metrics::counter!("catalog_products_created_total").increment(n as u64);
        progress(done, count);
    }
    store.analyze().await?;
    service.invalidate(None, &[]).await;
    Ok(SeedReport {
        products: count,
        skus,
        categories,
        reviews: reviews_total,
        elapsed: started.elapsed(),
    })
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Loads about 40 demo products when the catalog has none; `true` when it did.
pub async fn seed_demo_if_empty(catalog: &Catalog) -> anyhow::Result<Option<SeedReport>> {
    if catalog.service().store().product_count().await? > 0 {
        return Ok(None);
    }
    Ok(Some(seed_products(catalog, 40, 42, &|_, _| {}).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_kinds_are_singular_nouns() {
        assert_eq!(singular("Shelves"), "Shelf");
        assert_eq!(singular("Running Shoes"), "Running Shoe");
        assert_eq!(singular("Jeans"), "Jeans");
        assert_eq!(singular("Lenses"), "Lens");
        assert_eq!(singular("Yoga Mats"), "Yoga Mat");
    }

    #[test]
    fn splitmix_is_deterministic() {
        let mut a = Rng(7);
        let mut b = Rng(7);
        assert_eq!(
            (0..5).map(|_| a.next()).collect::<Vec<_>>(),
            (0..5).map(|_| b.next()).collect::<Vec<_>>()
        );
        let id = Rng(1).uuid_v7(1_767_225_600_000);
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id, Rng(1).uuid_v7(1_767_225_600_000));
    }
}
