//! The SQL implementation of [`CatalogStore`], written once and instantiated for SQLite and
//! PostgreSQL. Everything is parameterised (`$n` placeholders work on both); statements built at
//! run time are assembled only from this module's literals, with every value bound. The one real
//! dialect difference, full-text search, is a [`Dialect`]: FTS5 (an external-content table kept in
//! sync by triggers) on SQLite, a generated weighted `tsvector` with a GIN index on PostgreSQL.
//!
//! On SQLite, write transactions take the write lock up front (`BEGIN IMMEDIATE`): a deferred
//! transaction that has to upgrade its lock fails at once with "database is locked" when another
//! connection wrote meanwhile, instead of waiting out the busy timeout.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use platform::db::RowsAffected;
use platform::events::{Event, OutboxConnection};
use sqlx::{ColumnIndex, Decode, Encode, Executor, FromRow, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use contracts::kernel::ExchangeRate;

use crate::rates::Rate;

use super::{
    CatalogStore, Category, Facets, Product, ProductFilter, ProductQuery, Review, SeedBatch, StockChange, StoreError,
    StoreResult, Suggestion,
};
use crate::domain::{
    BoughtTogether, CategoryId, Currency, ListCursor, Money, PRICE_BUCKETS, ProductId, ProductSort, RatingSummary,
    ReviewId, SearchTerms,
};

/// The SQL flavour of the full-text parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

pub struct SqlStore<DB: platform::db::Backend> {
    pool: DB::Pool,
    dialect: Dialect,
}

impl<DB: platform::db::Backend> SqlStore<DB> {
    pub fn new(pool: DB::Pool, dialect: Dialect) -> Self {
        Self { pool, dialect }
    }
}

/// A bound value of a statement assembled at run time.
#[derive(Debug, Clone)]
enum Arg {
    Uuid(Uuid),
    OptUuid(Option<Uuid>),
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Time(OffsetDateTime),
    Bool(bool),
}

/// Statement text plus its arguments; `arg` appends the next `$n`.
#[derive(Debug, Default)]
struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            args: Vec::new(),
        }
    }

    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Adds an argument and returns its placeholder (which may be used more than once).
    fn arg(&mut self, value: Arg) -> String {
        self.args.push(value);
        format!("${}", self.args.len())
    }

    fn bind(&mut self, value: Arg) -> &mut Self {
        let p = self.arg(value);
        self.text.push_str(&p);
        self
    }

    fn bind_list(&mut self, values: impl IntoIterator<Item = Arg>) -> &mut Self {
        self.text.push('(');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
        }
        self.text.push(')');
        self
    }
}

const PRODUCT_COLUMNS: &str = "p.id, p.sku, p.name, p.slug, p.description, p.status, p.price_amount, p.currency, \
     p.compare_at_amount, p.brand, p.category_id, p.attributes, p.images, p.rating_1, p.rating_2, p.rating_3, \
     p.rating_4, p.rating_5, p.available, p.created_at, p.updated_at, p.version";
const INSERT_PRODUCT: &str = "INSERT INTO products (id, sku, name, slug, description, status, price_amount, currency, \
     compare_at_amount, brand, category_id, attributes, attribute_text, images, rating_count, rating_score, rating_1, \
     rating_2, rating_3, rating_4, rating_5, available, created_at, updated_at, version) VALUES ";
const CATEGORY_COLUMNS: &str = "id, parent_id, name, slug, description, created_at, updated_at, version";
const REVIEW_COLUMNS: &str =
    "id, product_id, user_id, rating, title, body, status, verified_purchase, author_erased, created_at, updated_at";
/// Recommendations read each asked-about product's heaviest partners, this many per product.
const PARTNERS_PER_PRODUCT: u32 = 100;
/// Rows per multi-row insert when seeding. PostgreSQL: 400 × 25 values, under its parameter
/// limit. SQLite: one row per (cached, reused) statement, because binding `$n` placeholders costs
/// a linear name lookup each, so a statement with thousands of them is quadratic.
const fn seed_rows_per_statement(dialect: Dialect) -> usize {
    match dialect {
        Dialect::Sqlite => 1,
        Dialect::Postgres => 400,
    }
}

/// A page of a relevance search taken from the best-ranked matches only; see
/// [`Dialect::top_ranked_sql`].
struct TopRanked {
    sql: Sql,
    /// The page's rows plus one (which says whether there is a next page).
    wanted: usize,
}

impl TopRanked {
    /// Whether `rows` are exactly the page the full ranking would give: a full page, or a
    /// shorter one when every match was a candidate. An empty answer says nothing (no row
    /// carries the count), so the full query decides it.
    fn settles(wanted: usize, rows: &[RankedProductRow]) -> bool {
        rows.len() == wanted || rows.last().is_some_and(|r| r.exhausted != 0)
    }
}

#[derive(FromRow)]
struct CountedProductRow {
    #[sqlx(flatten)]
    product: ProductRow,
    total: i64,
}

#[derive(FromRow)]
struct RankedProductRow {
    #[sqlx(flatten)]
    product: ProductRow,
    exhausted: i64,
}

#[derive(FromRow)]
struct ProductRow {
    id: Uuid,
    sku: String,
    name: String,
    slug: String,
    description: String,
    status: String,
    price_amount: i64,
    currency: String,
    compare_at_amount: Option<i64>,
    brand: Option<String>,
    category_id: Option<Uuid>,
    attributes: String,
    images: String,
    rating_1: i64,
    rating_2: i64,
    rating_3: i64,
    rating_4: i64,
    rating_5: i64,
    available: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    version: i64,
}

impl TryFrom<ProductRow> for Product {
    type Error = StoreError;
    fn try_from(r: ProductRow) -> Result<Self, Self::Error> {
        Ok(Product {
            id: ProductId(r.id),
            sku: r.sku,
            name: r.name,
            slug: r.slug,
            description: r.description,
            status: r.status.parse().map_err(StoreError::Corrupt)?,
            price: Money {
                amount: r.price_amount,
                currency: Currency::parse(&r.currency).map_err(|e| StoreError::Corrupt(e.into()))?,
            },
            compare_at: r.compare_at_amount,
            brand: r.brand,
            category_id: r.category_id.map(CategoryId),
            attributes: serde_json::from_str(&r.attributes).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            images: serde_json::from_str(&r.images).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            rating: RatingSummary {
                histogram: [r.rating_1, r.rating_2, r.rating_3, r.rating_4, r.rating_5],
            },
            available: r.available,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        })
    }
}

#[derive(FromRow)]
struct CategoryRow {
    id: Uuid,
    parent_id: Option<Uuid>,
    name: String,
    slug: String,
    description: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    version: i64,
}

impl From<CategoryRow> for Category {
    fn from(r: CategoryRow) -> Self {
        Category {
            id: CategoryId(r.id),
            parent_id: r.parent_id.map(CategoryId),
            name: r.name,
            slug: r.slug,
            description: r.description,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

#[derive(FromRow)]
struct ReviewRow {
    id: Uuid,
    product_id: Uuid,
    user_id: Uuid,
    rating: i64,
    title: String,
    body: String,
    status: String,
    verified_purchase: bool,
    author_erased: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<ReviewRow> for Review {
    type Error = StoreError;
    fn try_from(r: ReviewRow) -> Result<Self, Self::Error> {
        Ok(Review {
            id: ReviewId(r.id),
            product_id: ProductId(r.product_id),
            user_id: r.user_id,
            rating: r.rating,
            title: r.title,
            body: r.body,
            status: r.status.parse().map_err(StoreError::Corrupt)?,
            verified_purchase: r.verified_purchase,
            author_erased: r.author_erased,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Builds a statement from fixed fragments of this module (never from input), so it is safe.
fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

fn map_product_write(e: sqlx::Error) -> StoreError {
    if platform::db::is_unique_violation(&e, "sku") {
        StoreError::DuplicateSku
    } else if platform::db::is_unique_violation(&e, "slug") {
        StoreError::DuplicateSlug
    } else if is_foreign_key_violation(&e) {
        StoreError::UnknownCategory
    } else {
        StoreError::Db(e)
    }
}

fn map_category_write(e: sqlx::Error) -> StoreError {
    if platform::db::is_unique_violation(&e, "slug") {
        StoreError::DuplicateSlug
    } else if is_foreign_key_violation(&e) {
        StoreError::UnknownCategory
    } else {
        StoreError::Db(e)
    }
}

fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// Attribute values as the search index sees them.
fn attribute_text(attributes: &BTreeMap<String, String>) -> String {
    attributes.values().cloned().collect::<Vec<_>>().join(" ")
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn product_args(p: &Product) -> Vec<Arg> {
    vec![
        Arg::Uuid(p.id.0),
        Arg::Text(p.sku.clone()),
        Arg::Text(p.name.clone()),
        Arg::Text(p.slug.clone()),
        Arg::Text(p.description.clone()),
        Arg::Text(p.status.as_str().to_owned()),
        Arg::Int(p.price.amount),
        Arg::Text(p.price.currency.to_string()),
        Arg::OptInt(p.compare_at),
        Arg::OptText(p.brand.clone()),
        Arg::OptUuid(p.category_id.map(|c| c.0)),
        Arg::Text(json_text(&p.attributes)),
        Arg::Text(attribute_text(&p.attributes)),
        Arg::Text(json_text(&p.images)),
        Arg::Int(p.rating.count()),
        Arg::Int(p.rating.score()),
        Arg::Int(p.rating.histogram[0]),
        Arg::Int(p.rating.histogram[1]),
        Arg::Int(p.rating.histogram[2]),
        Arg::Int(p.rating.histogram[3]),
        Arg::Int(p.rating.histogram[4]),
        Arg::Int(p.available),
        Arg::Time(p.created_at),
        Arg::Time(p.updated_at),
        Arg::Int(p.version),
    ]
}

fn insert_products_sql(products: &[Product]) -> Sql {
    let mut q = Sql::new(INSERT_PRODUCT);
    for (i, p) in products.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.bind_list(product_args(p));
    }
    q
}

fn insert_attributes_sql(products: &[Product]) -> Option<Sql> {
    let mut q = Sql::new("INSERT INTO product_attributes (product_id, key, value) VALUES ");
    let mut any = false;
    for p in products {
        for (k, v) in &p.attributes {
            if any {
                q.push(", ");
            }
            any = true;
            q.bind_list([Arg::Uuid(p.id.0), Arg::Text(k.clone()), Arg::Text(v.to_lowercase())]);
        }
    }
    any.then_some(q)
}

/// SQLite's relevance of a full-text match (lower is better): bm25 weighing name 10, description
/// 1, brand 4, attributes 2. The plain ranking and `top_ranked_sql`'s candidates must use the
/// same expression, or the shortcut's pages would differ from the plain query's.
const SQLITE_RANK: &str = "bm25(products_fts, 10.0, 1.0, 4.0, 2.0)";

/// How many matches a relevance page skips: its cursor's key (relevance cursors count rows).
fn relevance_offset(query: &ProductQuery) -> i64 {
    query.after.map_or(0, |a| a.key.max(0))
}

/// Whether `f` filters by more than the search, status and stock.
fn narrows_beyond_visibility(f: &ProductFilter) -> bool {
    f.category_ids.is_some()
        || !f.brands.is_empty()
        || f.min_price.is_some()
        || f.max_price.is_some()
        || !f.attributes.is_empty()
        || f.min_rating_score.is_some()
}

impl Dialect {
    /// `FROM ... WHERE ...` for `filter`; returns the relevance expression (lower is better) when
    /// the filter searches.
    fn filter_sql(&self, f: &ProductFilter, q: &mut Sql) -> Option<&'static str> {
        let mut rank = None;
        if let Some(terms) = &f.search {
            match self {
                Dialect::Sqlite => {
                    // The full-text matches drive the join (CROSS JOIN fixes the order in SQLite):
                    // each match looks its product up by rowid, never the other way round.
                    q.push(" FROM (SELECT rowid AS fts_id, ")
                        .push(SQLITE_RANK)
                        .push(" AS fts_rank FROM products_fts WHERE products_fts MATCH ")
                        .bind(Arg::Text(terms.fts5(true)))
                        .push(") f CROSS JOIN products p ON p.seq = f.fts_id");
                    rank = Some("f.fts_rank");
                }
                Dialect::Postgres => {
                    q.push(" FROM products p CROSS JOIN to_tsquery('simple', ")
                        .bind(Arg::Text(terms.tsquery(true, "")))
                        .push(") AS tsq");
                    rank = Some("-ts_rank(p.search, tsq)");
                }
            }
        }
        if f.search.is_none() {
            q.push(" FROM products p");
        }
        q.push(" WHERE p.deleted_at IS NULL");
        if f.search.is_some() && *self == Dialect::Postgres {
            q.push(" AND p.search @@ tsq");
        }
        Self::conditions_sql(f, q);
        rank
    }

    /// ` AND ...` for every condition of `filter` but the search.
    fn conditions_sql(f: &ProductFilter, q: &mut Sql) {
        if !f.statuses.is_empty() {
            q.push(" AND p.status IN ")
                .bind_list(f.statuses.iter().map(|s| Arg::Text(s.as_str().to_owned())));
        }
        if let Some(ids) = &f.category_ids {
            if ids.is_empty() {
                q.push(" AND 1 = 0");
            } else {
                q.push(" AND p.category_id IN ")
                    .bind_list(ids.iter().map(|c| Arg::Uuid(c.0)));
            }
        }
        if !f.brands.is_empty() {
            q.push(" AND p.brand IN ")
                .bind_list(f.brands.iter().map(|b| Arg::Text(b.clone())));
        }
        if let Some(min) = f.min_price {
            q.push(" AND p.price_amount >= ").bind(Arg::Int(min));
        }
        if let Some(max) = f.max_price {
            q.push(" AND p.price_amount <= ").bind(Arg::Int(max));
        }
        let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (k, v) in &f.attributes {
            by_key.entry(k.as_str()).or_default().push(v.as_str());
        }
        for (key, values) in by_key {
            q.push(" AND EXISTS (SELECT 1 FROM product_attributes a WHERE a.product_id = p.id AND a.key = ")
                .bind(Arg::Text(key.to_owned()))
                .push(" AND a.value IN ")
                .bind_list(values.into_iter().map(|v| Arg::Text(v.to_lowercase())))
                .push(")");
        }
        if let Some(min) = f.min_rating_score {
            q.push(" AND p.rating_score >= ").bind(Arg::Int(min));
        }
        if f.in_stock {
            q.push(" AND p.available > 0");
        }
    }

    /// PostgreSQL, a search by relevance: ranking already visits every match, so the same pass
    /// counts them, keeping only `(id, rank)` per match; the page's product rows are read by id
    /// afterwards. Each row carries the count as `total`. `None` for other queries.
    fn counted_search_sql(&self, query: &ProductQuery) -> Option<Sql> {
        if *self != Dialect::Postgres || query.sort != ProductSort::Relevance || query.filter.search.is_none() {
            return None;
        }
        let mut q = Sql::new("WITH m AS MATERIALIZED (SELECT p.id, ");
        let mut inner = Sql::new("");
        let rank = self.filter_sql(&query.filter, &mut inner)?;
        let _ = write!(q.text, "{rank} AS r");
        // `inner` numbered its placeholders from $1, and so does `q`: nothing is bound before it.
        q.text.push_str(&inner.text);
        q.args = inner.args;
        let _ = write!(
            q.text,
            ") SELECT {PRODUCT_COLUMNS}, (SELECT count(*) FROM m) AS total \
             FROM (SELECT id, r FROM m ORDER BY r ASC, id DESC LIMIT "
        );
        q.bind(Arg::Int(i64::from(query.limit) + 1));
        q.push(" OFFSET ").bind(Arg::Int(relevance_offset(query)));
        q.push(") t CROSS JOIN products p WHERE p.id = t.id ORDER BY t.r ASC, t.id DESC");
        Some(q)
    }

    /// SQLite, a search by relevance: ranks the full-text index's best matches on the index
    /// alone (bm25, no product row read), then reads and filters only those candidates, instead of
    /// reading and filtering the product row of every match before ranking (a broad term at 100k
    /// products matches ~10k). The candidates are the first ones in the page order itself (rank,
    /// then newest `seq` first), so when enough of them pass the filter the page is exactly the
    /// one [`Dialect::list_sql`] gives; [`TopRanked::settles`] says when, else the caller runs
    /// that. `None` when the query does not sort by relevance, or filters by more than status and
    /// stock (a category or price filter would throw most candidates away).
    fn top_ranked_sql(&self, query: &ProductQuery) -> Option<TopRanked> {
        let f = &query.filter;
        let terms = f.search.as_ref()?;
        if *self != Dialect::Sqlite || query.sort != ProductSort::Relevance || narrows_beyond_visibility(f) {
            return None;
        }
        let offset = relevance_offset(query);
        let wanted = i64::from(query.limit) + 1;
        let candidates = ((offset + wanted) * 4).max(256);
        let mut q = Sql::new("WITH candidates AS MATERIALIZED (SELECT rowid AS fts_id, ");
        q.push(SQLITE_RANK)
            .push(" AS fts_rank FROM products_fts WHERE products_fts MATCH ")
            .bind(Arg::Text(terms.fts5(true)));
        q.push(" ORDER BY fts_rank, rowid DESC LIMIT ");
        let k = q.arg(Arg::Int(candidates));
        let _ = write!(
            q.text,
            "{k}), found AS MATERIALIZED (SELECT count(*) AS n FROM candidates) \
             SELECT {PRODUCT_COLUMNS}, (c.n < {k}) AS exhausted \
             FROM candidates f CROSS JOIN found c CROSS JOIN products p ON p.seq = f.fts_id WHERE p.deleted_at IS NULL"
        );
        Self::conditions_sql(f, &mut q);
        q.push(" ORDER BY f.fts_rank ASC, f.fts_id DESC LIMIT ")
            .bind(Arg::Int(wanted));
        q.push(" OFFSET ").bind(Arg::Int(offset));
        Some(TopRanked {
            sql: q,
            wanted: wanted as usize,
        })
    }

    fn list_sql(&self, query: &ProductQuery) -> Sql {
        let mut q = Sql::new("SELECT ");
        q.push(PRODUCT_COLUMNS);
        let rank = self.filter_sql(&query.filter, &mut q);
        let sort = match (query.sort, rank) {
            (ProductSort::Relevance, None) => ProductSort::Newest,
            (s, _) => s,
        };
        let mut offset = None;
        if let Some(ListCursor { key, id, .. }) = query.after {
            match sort {
                ProductSort::Newest => {
                    q.push(" AND p.id < ").bind(Arg::Uuid(id));
                }
                ProductSort::PriceAsc | ProductSort::PriceDesc | ProductSort::Rating => {
                    let (column, op) = match sort {
                        ProductSort::PriceAsc => ("p.price_amount", ">"),
                        ProductSort::PriceDesc => ("p.price_amount", "<"),
                        _ => ("p.rating_score", "<"),
                    };
                    let k = q.arg(Arg::Int(key));
                    let i = q.arg(Arg::Uuid(id));
                    let _ = write!(q.text, " AND ({column} {op} {k} OR ({column} = {k} AND p.id {op} {i}))");
                }
                ProductSort::Relevance => offset = Some(key),
            }
        }
        let order = match sort {
            ProductSort::Newest => "p.id DESC".to_owned(),
            ProductSort::PriceAsc => "p.price_amount ASC, p.id ASC".to_owned(),
            ProductSort::PriceDesc => "p.price_amount DESC, p.id DESC".to_owned(),
            ProductSort::Rating => "p.rating_score DESC, p.id DESC".to_owned(),
            // SQLite breaks ties by `seq` (newest first, like the v7 ids) so that the order is
            // the full-text index's own and `top_ranked_sql` can pick its candidates there.
            ProductSort::Relevance if *self == Dialect::Sqlite => format!("{} ASC, p.seq DESC", rank.unwrap_or("0")),
            ProductSort::Relevance => format!("{} ASC, p.id DESC", rank.unwrap_or("0")),
        };
        let _ = write!(q.text, " ORDER BY {order} LIMIT ");
        q.bind(Arg::Int(i64::from(query.limit) + 1));
        if let Some(offset) = offset {
            q.push(" OFFSET ").bind(Arg::Int(offset));
        }
        q
    }
}

macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for a in $args {
            query = match a {
                Arg::Uuid(v) => query.bind(v),
                Arg::OptUuid(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
                Arg::OptText(v) => query.bind(v),
                Arg::Int(v) => query.bind(v),
                Arg::OptInt(v) => query.bind(v),
                Arg::Time(v) => query.bind(v),
                Arg::Bool(v) => query.bind(v),
            };
        }
        query
    }};
}

impl<DB> SqlStore<DB>
where
    DB: platform::db::Backend,
    DB::Connection: OutboxConnection,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c DB::Pool: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> OffsetDateTime: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> Option<OffsetDateTime>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> &'q str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    DB::QueryResult: RowsAffected,
{
    /// Starts a write transaction. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`),
    /// waiting out the busy timeout, instead of failing at once on upgrading a read lock later.
    async fn begin(&self) -> Result<platform::db::Write<DB>, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => platform::db::begin::<DB>(&self.pool, Some("BEGIN IMMEDIATE")).await,
            Dialect::Postgres => platform::db::begin::<DB>(&self.pool, None).await,
        }
    }

    async fn execute_sql(conn: &mut DB::Connection, q: Sql) -> Result<u64, sqlx::Error> {
        let query = bind_args!(sqlx::query::<DB>(sql(q.text)), q.args);
        Ok(query.execute(&mut *conn).await?.rows_affected())
    }

    async fn fetch_products(&self, q: Sql) -> StoreResult<Vec<Product>> {
        let query = bind_args!(sqlx::query_as::<DB, ProductRow>(sql(q.text)), q.args);
        query
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(Product::try_from)
            .collect()
    }

    /// Writes the product's attribute rows (replacing any).
    async fn write_attributes(conn: &mut DB::Connection, product: &Product) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM product_attributes WHERE product_id = $1")
            .bind(product.id.0)
            .execute(&mut *conn)
            .await?;
        if let Some(q) = insert_attributes_sql(std::slice::from_ref(product)) {
            Self::execute_sql(conn, q).await?;
        }
        Ok(())
    }

    /// Locks the product row (the first write of a review transaction). The version is left alone:
    /// it tracks editorial changes, which `If-Match` protects; reviews are not one.
    async fn touch_product(conn: &mut DB::Connection, id: ProductId, now: OffsetDateTime) -> StoreResult<()> {
        let done = sqlx::query("UPDATE products SET updated_at = $2 WHERE id = $1 AND deleted_at IS NULL")
            .bind(id.0)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Recomputes a product's rating aggregates from its visible reviews.
    async fn refresh_ratings(conn: &mut DB::Connection, id: ProductId) -> Result<(), sqlx::Error> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT rating, COUNT(*) FROM reviews WHERE product_id = $1 AND status = 'visible' GROUP BY rating",
        )
        .bind(id.0)
        .fetch_all(&mut *conn)
        .await?;
        let mut summary = RatingSummary::default();
        for (rating, n) in rows {
            if let Some(slot) = usize::try_from(rating - 1)
                .ok()
                .and_then(|i| summary.histogram.get_mut(i))
            {
                *slot = n;
            }
        }
        sqlx::query(
            "UPDATE products SET rating_count = $2, rating_score = $3, rating_1 = $4, rating_2 = $5, rating_3 = $6,
                rating_4 = $7, rating_5 = $8 WHERE id = $1",
        )
        .bind(id.0)
        .bind(summary.count())
        .bind(summary.score())
        .bind(summary.histogram[0])
        .bind(summary.histogram[1])
        .bind(summary.histogram[2])
        .bind(summary.histogram[3])
        .bind(summary.histogram[4])
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn live_products_with(&self, condition: &'static str, value: Arg, limit: u32) -> StoreResult<Vec<Product>> {
        let mut q = Sql::new("SELECT ");
        q.push(PRODUCT_COLUMNS)
            .push(" FROM products p WHERE p.deleted_at IS NULL AND ");
        q.push(condition);
        q.bind(value);
        let _ = write!(q.text, " LIMIT {limit}");
        self.fetch_products(q).await
    }
}

#[async_trait::async_trait]
impl<DB> CatalogStore for SqlStore<DB>
where
    DB: platform::db::Backend,
    DB::Connection: OutboxConnection,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c DB::Pool: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> OffsetDateTime: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> Option<OffsetDateTime>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    DB::QueryResult: RowsAffected,
{
    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "categories"))]
    async fn categories(&self) -> StoreResult<Vec<Category>> {
        Ok(sqlx::query_as::<_, CategoryRow>(sql(format!(
            "SELECT {CATEGORY_COLUMNS} FROM categories ORDER BY name, id"
        )))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Category::from)
        .collect())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "category"))]
    async fn category(&self, id: CategoryId) -> StoreResult<Option<Category>> {
        Ok(
            sqlx::query_as::<_, CategoryRow>(sql(format!("SELECT {CATEGORY_COLUMNS} FROM categories WHERE id = $1")))
                .bind(id.0)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .next()
                .map(Category::from),
        )
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "category_product_counts"))]
    async fn category_product_counts(&self) -> StoreResult<HashMap<CategoryId, i64>> {
        let rows: Vec<(Uuid, i64)> = sqlx::query_as(
            "SELECT category_id, COUNT(*) FROM products
             WHERE deleted_at IS NULL AND status = 'active' AND category_id IS NOT NULL GROUP BY category_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, n)| (CategoryId(id), n)).collect())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "insert_category"))]
    async fn insert_category(&self, c: &Category) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO categories (id, parent_id, name, slug, description, created_at, updated_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(c.id.0)
        .bind(c.parent_id.map(|p| p.0))
        .bind(c.name.as_str())
        .bind(c.slug.as_str())
        .bind(c.description.as_str())
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(c.version)
        .execute(&mut *tx)
        .await
        .map_err(map_category_write)?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "update_category"))]
    async fn update_category(&self, c: &Category, expected_version: Option<i64>) -> StoreResult<Category> {
        let mut tx = self.begin().await?;
        let row = sqlx::query_as::<_, CategoryRow>(sql(format!(
            "UPDATE categories SET parent_id = $2, name = $3, slug = $4, description = $5, updated_at = $6,
                version = version + 1
             WHERE id = $1 AND ($7 IS NULL OR version = $7) RETURNING {CATEGORY_COLUMNS}"
        )))
        .bind(c.id.0)
        .bind(c.parent_id.map(|p| p.0))
        .bind(c.name.as_str())
        .bind(c.slug.as_str())
        .bind(c.description.as_str())
        .bind(c.updated_at)
        .bind(expected_version)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_category_write)?
        .into_iter()
        .next();
        tx.commit().await?;
        match row {
            Some(row) => Ok(row.into()),
            None if self.category(c.id).await?.is_some() => Err(StoreError::VersionMismatch),
            None => Err(StoreError::NotFound),
        }
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "delete_category"))]
    async fn delete_category(
        &self,
        id: CategoryId,
        reassign_to: Option<CategoryId>,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<(ProductId, String)>> {
        let mut tx = self.begin().await?;
        // The first statement writes, so SQLite takes its write lock up front.
        let exists = sqlx::query("UPDATE categories SET version = version + 1 WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        if exists.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let mut moved = Vec::new();
        if let Some(target) = reassign_to {
            let rows: Vec<(Uuid, String)> = sqlx::query_as(
                "UPDATE products SET category_id = $2, updated_at = $3, version = version + 1
                 WHERE category_id = $1 AND deleted_at IS NULL RETURNING id, slug",
            )
            .bind(id.0)
            .bind(target.0)
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_category_write)?;
            moved = rows.into_iter().map(|(p, s)| (ProductId(p), s)).collect();
            sqlx::query(
                "UPDATE categories SET parent_id = $2, updated_at = $3, version = version + 1 WHERE parent_id = $1",
            )
            .bind(id.0)
            .bind(target.0)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_category_write)?;
        } else {
            let (products,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM products WHERE category_id = $1 AND deleted_at IS NULL")
                    .bind(id.0)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .next()
                    .unwrap_or((0,));
            let (children,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM categories WHERE parent_id = $1")
                .bind(id.0)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .next()
                .unwrap_or((0,));
            if products > 0 || children > 0 {
                return Err(StoreError::CategoryNotEmpty { products, children });
            }
        }
        // Deleted products keep no reference to a category that is gone.
        sqlx::query("UPDATE products SET category_id = NULL WHERE category_id = $1 AND deleted_at IS NOT NULL")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM categories WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(moved)
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "insert_product"))]
    async fn insert_product(&self, product: &Product, events: &[Event]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        Self::execute_sql(&mut tx, insert_products_sql(std::slice::from_ref(product)))
            .await
            .map_err(map_product_write)?;
        if let Some(q) = insert_attributes_sql(std::slice::from_ref(product)) {
            Self::execute_sql(&mut tx, q).await?;
        }
        platform::events::enqueue_all(&mut *tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "product"))]
    async fn product(&self, id: ProductId) -> StoreResult<Option<Product>> {
        Ok(self
            .live_products_with("p.id = ", Arg::Uuid(id.0), 1)
            .await?
            .into_iter()
            .next())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "product_by_slug"))]
    async fn product_by_slug(&self, slug: &str) -> StoreResult<Option<Product>> {
        Ok(self
            .live_products_with("p.slug = ", Arg::Text(slug.to_owned()), 1)
            .await?
            .into_iter()
            .next())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "products_by_skus"))]
    async fn products_by_skus(&self, skus: &[String]) -> StoreResult<Vec<Product>> {
        if skus.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = Sql::new("SELECT ");
        q.push(PRODUCT_COLUMNS)
            .push(" FROM products p WHERE p.deleted_at IS NULL AND p.sku IN ");
        q.bind_list(skus.iter().map(|s| Arg::Text(s.clone())));
        self.fetch_products(q).await
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "record_purchases"))]
    async fn record_purchases(&self, user: Uuid, skus: &[String]) -> StoreResult<u64> {
        if skus.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        // The products are read and locked in one statement, in id order, so two deliveries
        // sharing products wait rather than deadlock. A review's insert locks its product first
        // too (`touch_product`): one written at this moment either waits and then sees this
        // purchase, or is seen by the UPDATE below. Without the lock each could miss the other
        // and leave the review unverified for good. SQLite's `BEGIN IMMEDIATE` already serialises
        // the two transactions.
        let mut q = Sql::new("SELECT id FROM products WHERE deleted_at IS NULL AND sku IN ");
        q.bind_list(skus.iter().map(|s| Arg::Text(s.clone())));
        q.push(" ORDER BY id");
        if self.dialect == Dialect::Postgres {
            q.push(" FOR NO KEY UPDATE");
        }
        let products: Vec<Uuid> = bind_args!(sqlx::query_scalar::<DB, Uuid>(sql(q.text)), q.args)
            .fetch_all(&mut *tx)
            .await?;
        let mut recorded = 0;
        for product in products {
            recorded += sqlx::query(
                "INSERT INTO verified_purchases (user_id, product_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(user)
            .bind(product)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("UPDATE reviews SET verified_purchase = TRUE WHERE user_id = $1 AND product_id = $2")
                .bind(user)
                .bind(product)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(recorded)
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "record_co_purchase"))]
    async fn record_co_purchase(
        &self,
        order: Uuid,
        products: &BoughtTogether,
        weight: f64,
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let first_time = sqlx::query(
            "INSERT INTO co_purchase_orders (order_id, counted_at) VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order)
        .bind(at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !first_time {
            tx.rollback().await?;
            return Ok(false);
        }
        // Every pair in one statement ($1 weight, $2 time, then two ids per pair): at most
        // 12 × 11 rows, so the cost of an order is bounded.
        let mut text = String::from("INSERT INTO co_purchases (product_id, other_id, weight, orders, last_at) VALUES ");
        for (i, _) in products.pairs().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(&format!("(${}, ${}, $1, 1, $2)", 2 * i + 3, 2 * i + 4));
        }
        text.push_str(
            " ON CONFLICT (product_id, other_id) DO UPDATE SET weight = co_purchases.weight + excluded.weight, \
             orders = co_purchases.orders + 1, \
             last_at = CASE WHEN excluded.last_at > co_purchases.last_at THEN excluded.last_at ELSE co_purchases.last_at END",
        );
        let mut query = sqlx::query(sql(text)).bind(weight).bind(at);
        for (a, b) in products.pairs() {
            query = query.bind(a.0).bind(b.0);
        }
        query.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "bought_with"))]
    async fn bought_with(&self, products: &[ProductId], limit: u32) -> StoreResult<Vec<Product>> {
        if products.is_empty() {
            return Ok(Vec::new());
        }
        // Each product's heaviest partners off the (product, weight) index, summed. A best seller
        // pairs with thousands of products; reading all of them made the cost grow with the
        // order history (and PostgreSQL's planner, given a plain join for one product, walked
        // the products table instead: p50 17 ms at 100k orders; see docs/benchmarks.md).
        let mut q = Sql::new("SELECT ");
        q.push(PRODUCT_COLUMNS)
            .push(" FROM (SELECT other_id, SUM(weight) AS weight FROM (");
        for (i, product) in products.iter().enumerate() {
            if i > 0 {
                q.push(" UNION ALL ");
            }
            q.push("SELECT * FROM (SELECT other_id, weight FROM co_purchases WHERE product_id = ")
                .bind(Arg::Uuid(product.0))
                .push(&format!(
                    " ORDER BY weight DESC LIMIT {PARTNERS_PER_PRODUCT}) AS top{i}"
                ));
        }
        q.push(") AS partners GROUP BY other_id) c JOIN products p ON p.id = c.other_id")
            .push(" WHERE p.deleted_at IS NULL AND p.status = 'active' AND p.available > 0 AND p.id NOT IN ")
            .bind_list(products.iter().map(|p| Arg::Uuid(p.0)))
            .push(" ORDER BY c.weight DESC, p.id DESC LIMIT ")
            .bind(Arg::Int(i64::from(limit)));
        self.fetch_products(q).await
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "rates"))]
    async fn rates(&self) -> StoreResult<Vec<Rate>> {
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT currency, rate_micros, as_of FROM exchange_rates ORDER BY currency")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(currency, micros, as_of)| {
                let corrupt = |what: String| StoreError::Corrupt(format!("exchange rate {currency}: {what}"));
                Ok(Rate {
                    currency: Currency::parse(&currency).map_err(|e| corrupt(e.to_string()))?,
                    rate: u64::try_from(micros)
                        .map_err(|e| corrupt(e.to_string()))
                        .and_then(|m| ExchangeRate::from_micros(m).map_err(|e| corrupt(e.to_string())))?,
                    as_of: crate::rates::parse_date(&as_of).map_err(corrupt)?,
                })
            })
            .collect()
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "put_rates"))]
    async fn put_rates(&self, rates: &[Rate], source: &str, now: OffsetDateTime) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        for r in rates {
            sqlx::query(
                "INSERT INTO exchange_rates (currency, rate_micros, as_of, source, updated_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (currency) DO UPDATE SET rate_micros = excluded.rate_micros, as_of = excluded.as_of,
                     source = excluded.source, updated_at = excluded.updated_at",
            )
            .bind(r.currency.as_str())
            .bind(i64::try_from(r.rate.micros()).unwrap_or(i64::MAX))
            .bind(crate::rates::format_date(r.as_of))
            .bind(source)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "delete_rate"))]
    async fn delete_rate(&self, currency: Currency) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM exchange_rates WHERE currency = $1")
            .bind(currency.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "update_product"))]
    async fn update_product(
        &self,
        p: &Product,
        expected_version: Option<i64>,
        events: &[Event],
    ) -> StoreResult<Product> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE products SET sku = $2, name = $3, slug = $4, description = $5, status = $6, price_amount = $7,
                currency = $8, compare_at_amount = $9, brand = $10, category_id = $11, attributes = $12,
                attribute_text = $13, images = $14, updated_at = $15, version = version + 1
             WHERE id = $1 AND deleted_at IS NULL AND ($16 IS NULL OR version = $16)",
        )
        .bind(p.id.0)
        .bind(p.sku.as_str())
        .bind(p.name.as_str())
        .bind(p.slug.as_str())
        .bind(p.description.as_str())
        .bind(p.status.as_str())
        .bind(p.price.amount)
        .bind(p.price.currency.to_string())
        .bind(p.compare_at)
        .bind(p.brand.clone())
        .bind(p.category_id.map(|c| c.0))
        .bind(json_text(&p.attributes))
        .bind(attribute_text(&p.attributes))
        .bind(json_text(&p.images))
        .bind(p.updated_at)
        .bind(expected_version)
        .execute(&mut *tx)
        .await
        .map_err(map_product_write)?;
        if done.rows_affected() == 0 {
            drop(tx);
            return match self.product(p.id).await? {
                Some(_) => Err(StoreError::VersionMismatch),
                None => Err(StoreError::NotFound),
            };
        }
        Self::write_attributes(&mut tx, p).await?;
        platform::events::enqueue_all(&mut *tx, events).await?;
        tx.commit().await?;
        self.product(p.id).await?.ok_or(StoreError::NotFound)
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "delete_product"))]
    async fn delete_product(
        &self,
        id: ProductId,
        expected_version: Option<i64>,
        now: OffsetDateTime,
        events: &[Event],
    ) -> StoreResult<Product> {
        let Some(current) = self.product(id).await? else {
            return Err(StoreError::NotFound);
        };
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE products SET deleted_at = $2, updated_at = $2, version = version + 1
             WHERE id = $1 AND deleted_at IS NULL AND ($3 IS NULL OR version = $3)",
        )
        .bind(id.0)
        .bind(now)
        .bind(expected_version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(if expected_version.is_some() {
                StoreError::VersionMismatch
            } else {
                StoreError::NotFound
            });
        }
        platform::events::enqueue_all(&mut *tx, events).await?;
        tx.commit().await?;
        Ok(current)
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "list_products"))]
    async fn list_products(&self, query: &ProductQuery) -> StoreResult<Vec<Product>> {
        if let Some(top) = self.dialect.top_ranked_sql(query) {
            let TopRanked { sql: q, wanted } = top;
            let rows = bind_args!(sqlx::query_as::<DB, RankedProductRow>(sql(q.text)), q.args)
                .fetch_all(&self.pool)
                .await?;
            let settled = TopRanked::settles(wanted, &rows);
            metrics::counter!("catalog_search_top_ranked_total", "settled" => if settled { "yes" } else { "no" })
                .increment(1);
            if settled {
                return rows.into_iter().map(|r| Product::try_from(r.product)).collect();
            }
        }
        self.fetch_products(self.dialect.list_sql(query)).await
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "product_page"))]
    async fn product_page(&self, query: &ProductQuery) -> StoreResult<(Vec<Product>, i64)> {
        if let Some(q) = self.dialect.counted_search_sql(query) {
            let rows = bind_args!(sqlx::query_as::<DB, CountedProductRow>(sql(q.text)), q.args)
                .fetch_all(&self.pool)
                .await?;
            // A page past the end has no row to carry the count.
            if let Some(total) = rows.first().map(|r| r.total) {
                let products = rows.into_iter().map(|r| Product::try_from(r.product));
                return Ok((products.collect::<StoreResult<_>>()?, total));
            }
        }
        let rows = self.list_products(query).await?;
        Ok((rows, self.count_products(&query.filter).await?))
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "count_products"))]
    async fn count_products(&self, filter: &ProductFilter) -> StoreResult<i64> {
        let mut q = Sql::new("SELECT COUNT(*)");
        match &filter.search {
            // Visibility is all each match is looked up for: the index has it (migration 0003).
            Some(terms)
                if self.dialect == Dialect::Sqlite && !filter.in_stock && !narrows_beyond_visibility(filter) =>
            {
                q.push(
                    " FROM products_fts f CROSS JOIN products p INDEXED BY products_visibility ON p.seq = f.rowid \
                     WHERE products_fts MATCH ",
                )
                .bind(Arg::Text(terms.fts5(true)))
                .push(" AND p.deleted_at IS NULL");
                Dialect::conditions_sql(filter, &mut q);
            }
            _ => {
                self.dialect.filter_sql(filter, &mut q);
            }
        }
        let query = bind_args!(sqlx::query_as::<DB, (i64,)>(sql(q.text)), q.args);
        Ok(query.fetch_all(&self.pool).await?.first().map_or(0, |r| r.0))
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "facets"))]
    async fn facets(&self, filter: &ProductFilter) -> StoreResult<Facets> {
        let mut q = Sql::new("SELECT p.category_id, COUNT(*)");
        self.dialect.filter_sql(filter, &mut q);
        q.push(" GROUP BY p.category_id ORDER BY COUNT(*) DESC LIMIT 100");
        let categories: Vec<(Option<Uuid>, i64)> =
            bind_args!(sqlx::query_as::<DB, (Option<Uuid>, i64)>(sql(q.text)), q.args)
                .fetch_all(&self.pool)
                .await?;

        let mut q = Sql::new("SELECT p.brand, COUNT(*)");
        self.dialect.filter_sql(filter, &mut q);
        q.push(" GROUP BY p.brand ORDER BY COUNT(*) DESC, p.brand LIMIT 100");
        let brands: Vec<(Option<String>, i64)> =
            bind_args!(sqlx::query_as::<DB, (Option<String>, i64)>(sql(q.text)), q.args)
                .fetch_all(&self.pool)
                .await?;

        let mut q = Sql::new("SELECT ");
        for (i, (from, to)) in PRICE_BUCKETS.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            // Bucket edges are this module's constants, not input.
            let _ = match to {
                Some(to) => write!(
                    q.text,
                    "COUNT(CASE WHEN p.price_amount >= {from} AND p.price_amount < {to} THEN 1 END)"
                ),
                None => write!(q.text, "COUNT(CASE WHEN p.price_amount >= {from} THEN 1 END)"),
            };
        }
        self.dialect.filter_sql(filter, &mut q);
        // Always true (a CHECK constraint), but it steers SQLite to the covering (status, price) index.
        q.push(" AND p.price_amount > 0");
        let query = bind_args!(sqlx::query::<DB>(sql(q.text)), q.args);
        let rows = query.fetch_all(&self.pool).await?;
        let mut price_buckets = Vec::with_capacity(PRICE_BUCKETS.len());
        for i in 0..PRICE_BUCKETS.len() {
            let n = match rows.first() {
                Some(row) => sqlx::Row::try_get::<i64, _>(row, i)?,
                None => 0,
            };
            price_buckets.push(n);
        }
        Ok(Facets {
            categories: categories.into_iter().map(|(c, n)| (c.map(CategoryId), n)).collect(),
            brands,
            price_buckets,
        })
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "vocabulary"))]
    async fn vocabulary(&self) -> StoreResult<Vec<(String, i64)>> {
        let text = match self.dialect {
            // FTS5's own word list (migration 0006), per column. It covers products of every
            // status: a draft's words are catalog words too.
            Dialect::Sqlite => {
                "SELECT term, sum(doc) FROM products_fts_words WHERE col IN ('name', 'brand') GROUP BY term"
            }
            // The name (A) and brand (B) words of active products' stored search vectors.
            Dialect::Postgres => {
                "SELECT word, ndoc::bigint FROM ts_stat(
                   $$SELECT search FROM products WHERE deleted_at IS NULL AND status = 'active'$$, 'ab')"
            }
        };
        Ok(sqlx::query_as(text).fetch_all(&self.pool).await?)
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "suggest"))]
    async fn suggest(&self, terms: &SearchTerms, limit: u32) -> StoreResult<Vec<Suggestion>> {
        let text = match self.dialect {
            Dialect::Sqlite => {
                "SELECT p.id, p.name, p.slug FROM products_fts f CROSS JOIN products p ON p.seq = f.rowid
                 WHERE products_fts MATCH $1 AND p.deleted_at IS NULL AND p.status = 'active'
                 ORDER BY f.rank, p.rating_score DESC LIMIT $2"
            }
            Dialect::Postgres => {
                "SELECT p.id, p.name, p.slug FROM products p CROSS JOIN to_tsquery('simple', $1) AS tsq
                 WHERE p.search @@ tsq AND p.deleted_at IS NULL AND p.status = 'active'
                 ORDER BY ts_rank(p.search, tsq) DESC, p.rating_score DESC LIMIT $2"
            }
        };
        let expression = match self.dialect {
            Dialect::Sqlite => terms
                .fts5(true)
                .split(' ')
                .map(|phrase| format!("name : {phrase}"))
                .collect::<Vec<_>>()
                .join(" "),
            Dialect::Postgres => terms.tsquery(true, "A"),
        };
        let rows: Vec<(Uuid, String, String)> = sqlx::query_as(text)
            .bind(expression)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, slug)| Suggestion {
                id: ProductId(id),
                name,
                slug,
            })
            .collect())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "related"))]
    async fn related(&self, product: &Product, limit: u32) -> StoreResult<Vec<Product>> {
        let mut out: Vec<Product> = Vec::new();
        if let Some(category) = product.category_id {
            let mut q = Sql::new("SELECT ");
            q.push(PRODUCT_COLUMNS)
                .push(" FROM products p WHERE p.deleted_at IS NULL AND p.status = 'active' AND p.category_id = ")
                .bind(Arg::Uuid(category.0))
                .push(" AND p.id <> ")
                .bind(Arg::Uuid(product.id.0))
                .push(" ORDER BY p.rating_score DESC, p.id DESC LIMIT ")
                .bind(Arg::Int(i64::from(limit)));
            out = self.fetch_products(q).await?;
        }
        if out.len() < limit as usize && !product.attributes.is_empty() {
            // Products sharing an attribute value, found through the (key, value) index.
            let mut q = Sql::new("SELECT ");
            q.push(PRODUCT_COLUMNS)
                .push(
                    " FROM products p WHERE p.deleted_at IS NULL AND p.status = 'active' AND p.id IN \
                     (SELECT b.product_id FROM product_attributes a JOIN product_attributes b \
                      ON b.key = a.key AND b.value = a.value WHERE a.product_id = ",
                )
                .bind(Arg::Uuid(product.id.0))
                .push(" AND b.product_id <> ")
                .bind(Arg::Uuid(product.id.0))
                .push(" LIMIT 500) ORDER BY p.rating_score DESC, p.id DESC LIMIT ")
                .bind(Arg::Int(i64::from(limit) * 2));
            for p in self.fetch_products(q).await? {
                if out.len() >= limit as usize {
                    break;
                }
                if !out.iter().any(|o| o.id == p.id) {
                    out.push(p);
                }
            }
        }
        Ok(out)
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "product_count"))]
    async fn product_count(&self) -> StoreResult<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM products WHERE deleted_at IS NULL")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .next()
            .unwrap_or((0,));
        Ok(n)
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "set_available"))]
    async fn set_available(&self, sku: &str, available: i64, event_id: Uuid) -> StoreResult<Option<StockChange>> {
        // One statement, atomic on its own: no transaction around it (two round trips saved per
        // stock event). `updated_at` stays the time of the last editorial change or review: stock
        // moves on its own schedule, and the `available` count in the body (the ETag) shows it.
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "UPDATE products SET available = $2, stock_event_id = $3
             WHERE sku = $1 AND deleted_at IS NULL AND (stock_event_id IS NULL OR stock_event_id < $3)
             RETURNING id, slug",
        )
        .bind(sku)
        .bind(available)
        .bind(event_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().next().map(|(id, slug)| StockChange {
            id: ProductId(id),
            slug,
        }))
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "insert_review"))]
    async fn insert_review(&self, r: &Review, now: OffsetDateTime) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        // The product's lock first: see `record_purchases`. The INSERT's own snapshot, taken
        // after it, sees any purchase recorded before.
        Self::touch_product(&mut tx, r.product_id, now).await?;
        let verified: bool = sqlx::query_scalar(sql(format!(
            "INSERT INTO reviews ({REVIEW_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             EXISTS (SELECT 1 FROM verified_purchases WHERE user_id = $3 AND product_id = $2), $8, $9, $10) \
             RETURNING verified_purchase"
        )))
        .bind(r.id.0)
        .bind(r.product_id.0)
        .bind(r.user_id)
        .bind(r.rating)
        .bind(r.title.as_str())
        .bind(r.body.as_str())
        .bind(r.status.as_str())
        .bind(r.author_erased)
        .bind(r.created_at)
        .bind(r.updated_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if platform::db::is_unique_violation(&e, "user") {
                StoreError::DuplicateReview
            } else {
                StoreError::Db(e)
            }
        })?;
        Self::refresh_ratings(&mut tx, r.product_id).await?;
        tx.commit().await?;
        Ok(verified)
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "review"))]
    async fn review(&self, id: ReviewId) -> StoreResult<Option<Review>> {
        sqlx::query_as::<_, ReviewRow>(sql(format!("SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = $1")))
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .next()
            .map(Review::try_from)
            .transpose()
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "update_review"))]
    async fn update_review(&self, r: &Review, now: OffsetDateTime) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        Self::touch_product(&mut tx, r.product_id, now).await?;
        let done = sqlx::query(
            "UPDATE reviews SET rating = $2, title = $3, body = $4, status = $5, updated_at = $6 WHERE id = $1",
        )
        .bind(r.id.0)
        .bind(r.rating)
        .bind(r.title.as_str())
        .bind(r.body.as_str())
        .bind(r.status.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Self::refresh_ratings(&mut tx, r.product_id).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "delete_review"))]
    async fn delete_review(&self, r: &Review, now: OffsetDateTime) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        Self::touch_product(&mut tx, r.product_id, now).await?;
        let done = sqlx::query("DELETE FROM reviews WHERE id = $1")
            .bind(r.id.0)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Self::refresh_ratings(&mut tx, r.product_id).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "list_reviews"))]
    async fn list_reviews(
        &self,
        product: ProductId,
        include_hidden: bool,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<Review>> {
        sqlx::query_as::<_, ReviewRow>(sql(format!(
            "SELECT {REVIEW_COLUMNS} FROM reviews WHERE product_id = $1 AND ($2 OR status = 'visible')
               AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4"
        )))
        .bind(product.0)
        .bind(include_hidden)
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Review::try_from)
        .collect()
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "settle_after_bulk_load"))]
    async fn settle_after_bulk_load(&self) -> StoreResult<()> {
        match self.dialect {
            Dialect::Sqlite => {
                // Merges the full-text index's segments into one, so a search reads one b-tree.
                sqlx::query("INSERT INTO products_fts (products_fts) VALUES ('optimize')")
                    .execute(&self.pool)
                    .await?;
                sqlx::query("ANALYZE").execute(&self.pool).await?;
            }
            Dialect::Postgres => {
                // Moves the GIN index's pending entries into the index proper (a search scans the
                // pending list whole), marks pages all-visible and refreshes the statistics.
                sqlx::query("VACUUM (ANALYZE) products, product_attributes, reviews")
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "analyze"))]
    async fn analyze(&self) -> StoreResult<()> {
        let statement = match self.dialect {
            Dialect::Sqlite => "ANALYZE",
            Dialect::Postgres => "ANALYZE products, product_attributes, reviews",
        };
        sqlx::query(statement).execute(&self.pool).await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.query", skip_all, fields(db.system = DB::NAME, db.operation = "insert_seed_batch"))]
    async fn insert_seed_batch(&self, batch: &SeedBatch) -> StoreResult<()> {
        let per = seed_rows_per_statement(self.dialect);
        let mut tx = self.begin().await?;
        for chunk in batch.products.chunks(per) {
            Self::execute_sql(&mut tx, insert_products_sql(chunk))
                .await
                .map_err(map_product_write)?;
        }
        // About 3 attribute rows per product: still under the parameter limits.
        for chunk in batch.products.chunks(per) {
            if let Some(q) = insert_attributes_sql(chunk) {
                Self::execute_sql(&mut tx, q).await?;
            }
        }
        for chunk in batch.reviews.chunks(per) {
            let mut q = Sql::new(&format!("INSERT INTO reviews ({REVIEW_COLUMNS}) VALUES "));
            for (i, r) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.bind_list([
                    Arg::Uuid(r.id.0),
                    Arg::Uuid(r.product_id.0),
                    Arg::Uuid(r.user_id),
                    Arg::Int(r.rating),
                    Arg::Text(r.title.clone()),
                    Arg::Text(r.body.clone()),
                    Arg::Text(r.status.as_str().to_owned()),
                    Arg::Bool(r.verified_purchase),
                    Arg::Bool(r.author_erased),
                    Arg::Time(r.created_at),
                    Arg::Time(r.updated_at),
                ]);
            }
            Self::execute_sql(&mut tx, q).await?;
        }
        platform::events::enqueue_all(&mut *tx, &batch.events).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ProductStatus;

    #[test]
    fn list_sql_binds_every_value_and_pages_by_key() {
        let query = ProductQuery {
            filter: ProductFilter {
                statuses: vec![ProductStatus::Active],
                brands: vec!["Acme'; DROP TABLE products; --".into()],
                attributes: vec![("color".into(), "red".into()), ("color".into(), "blue".into())],
                search: Some(SearchTerms::parse("q", "red shoe").expect("terms")),
                ..Default::default()
            },
            sort: ProductSort::PriceAsc,
            after: Some(ListCursor {
                sort: ProductSort::PriceAsc,
                key: 500,
                id: Uuid::nil(),
            }),
            limit: 10,
        };
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let q = dialect.list_sql(&query);
            assert!(!q.text.contains("DROP"), "{}", q.text);
            assert!(q.text.contains("ORDER BY p.price_amount ASC, p.id ASC"));
            // Both values of one attribute key are alternatives inside one EXISTS.
            assert_eq!(q.text.matches("EXISTS").count(), 1);
            let placeholders = (1..=q.args.len()).all(|i| q.text.contains(&format!("${i}")));
            assert!(placeholders, "{}", q.text);
        }
    }
}
