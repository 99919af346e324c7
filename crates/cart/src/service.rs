//! Cart's use cases. Handlers call these; these identify the cart, validate input with the domain
//! rules, ask [`Pricing`] for current products and stock, and call the store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use platform::FieldError;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::CartConfig;
use crate::domain::{
    CartId, CartKind, CartToken, Limits, LineRefused, Owner, PricedCart, Product, Sku, Snapshot, expiry_cutoff,
    is_expired, parse_quantity, price_cart,
};
use crate::pricing::{Pricing, PricingError};
use crate::store::{AddItem, CartStore, LineOutcome, Merge, MergeOutcome, SetItem, StoreError, StoredCart};

/// Expired carts deleted per statement by the sweeper.
const SWEEP_BATCH: u32 = 500;
/// A read records activity at most this often (reads rarely write).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Everything that can go wrong in the cart, mapped to HTTP once (`From<CartError> for Problem`).
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    Conflict { detail: String, errors: Vec<FieldError> },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl CartError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    fn gone() -> Self {
        Self::NotFound(
            "no cart for this cart token: it expired, was merged into a user's cart, or never existed".into(),
        )
    }
}

impl From<StoreError> for CartError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::CartGone => Self::NotFound("the cart no longer exists (it expired or was merged)".into()),
            // The sqlx error itself, so Problem::from_error can tell an outage (503) from a bug.
            StoreError::Db(e) => Self::Internal(e.into()),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<PricingError> for CartError {
    fn from(e: PricingError) -> Self {
        tracing::warn!(service = e.service, error = %e.message, "pricing the cart failed");
        Self::Unavailable(format!(
            "the cart cannot be priced right now because {} is unavailable; retry shortly",
            e.service
        ))
    }
}

pub type CartResult<T> = Result<T, CartError>;

/// Who is asking: a user (verified bearer token), a guest cart token, both, or neither.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub user: Option<Uuid>,
    /// The `X-Cart-Token` header: `Some(None)` when present but not a token this API issues.
    pub token: Option<Option<CartToken>>,
}

/// A cart priced at read time, with what the view needs besides.
#[derive(Debug, Clone)]
pub struct CartSnapshot {
    pub id: CartId,
    pub kind: CartKind,
    pub priced: PricedCart,
    pub touched_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

pub(crate) fn describe_metrics() {
    metrics::describe_gauge!("carts_active", "Carts stored, by kind (guest, user).");
    metrics::describe_counter!("cart_items_added_total", "Units added to carts.");
    metrics::describe_counter!("carts_merged_total", "Guest carts merged into a user's cart.");
    metrics::describe_counter!(
        "carts_expired_total",
        "Carts deleted after inactivity (by the sweeper, or found expired on access)."
    );
}

/// Timestamps are stored to the whole second, so SQLite's RFC 3339 text sorts as time does.
pub use platform::clock::now_to_second as now;
use platform::clock::to_second as truncate;

fn refused(refused: LineRefused, sku: &Sku) -> CartError {
    match refused {
        LineRefused::LineLimit { .. } => CartError::invalid("quantity", refused.to_string()),
        LineRefused::TooManyLines { .. } => CartError::invalid("sku", refused.to_string()),
        LineRefused::Insufficient { requested, available } => CartError::Conflict {
            detail: format!("not enough stock for {sku}: {requested} requested, {available} available"),
            errors: vec![FieldError::new("quantity", format!("only {available} available"))],
        },
    }
}

fn parse_sku(raw: &str) -> Result<Sku, FieldError> {
    Sku::parse(raw).map_err(|m| FieldError::new("sku", m))
}

pub struct CartService {
    store: Arc<dyn CartStore>,
    pricing: Arc<dyn Pricing>,
    config: CartConfig,
}

impl CartService {
    pub fn new(store: Arc<dyn CartStore>, pricing: Arc<dyn Pricing>, config: CartConfig) -> Self {
        Self { store, pricing, config }
    }

    pub fn config(&self) -> &CartConfig {
        &self.config
    }

    fn limits(&self) -> Limits {
        Limits {
            max_line_quantity: self.config.max_line_quantity,
            max_lines: self.config.max_lines,
        }
    }

    fn ttl(&self, kind: CartKind) -> Duration {
        match kind {
            CartKind::Guest => self.config.guest_ttl,
            CartKind::User => self.config.user_ttl,
        }
    }

    fn cutoff(&self, kind: CartKind, now: OffsetDateTime) -> OffsetDateTime {
        truncate(expiry_cutoff(now, self.ttl(kind)))
    }

    // ---- identifying the cart -----------------------------------------------------------------

    /// The caller's cart: the user's (merging a live guest cart named alongside first), or the
    /// guest cart of the token. 401 with neither; 404 for a token without a live cart.
    async fn resolve(&self, caller: &Caller) -> CartResult<StoredCart> {
        let now = now();
        match (caller.user, &caller.token) {
            (Some(user), token) => {
                if let Some(Some(token)) = token {
                    self.merge_quietly(user, token, now).await?;
                }
                let (cart, expired) = self
                    .store
                    .user_cart(user, now, self.cutoff(CartKind::User, now))
                    .await?;
                if expired {
                    metrics::counter!("carts_expired_total").increment(1);
                }
                Ok(cart)
            }
            (None, Some(Some(token))) => {
                let cart = self
                    .store
                    .find(&Owner::Guest(token.hash()))
                    .await?
                    .ok_or_else(CartError::gone)?;
                if is_expired(cart.touched_at, self.config.guest_ttl, now) {
                    if self.store.delete_cart(cart.id).await? {
                        metrics::counter!("carts_expired_total").increment(1);
                    }
                    return Err(CartError::gone());
                }
                Ok(cart)
            }
            (None, Some(None)) => Err(CartError::gone()),
            (None, None) => Err(CartError::Unauthenticated(
                "identify the cart with a bearer token (your cart) or an X-Cart-Token header (a guest cart)".into(),
            )),
        }
    }

    /// A request carrying both a bearer token and a guest token merges the guest cart; a token
    /// without a live cart (already merged, expired) is ignored.
    async fn merge_quietly(&self, user: Uuid, token: &CartToken, now: OffsetDateTime) -> CartResult<()> {
        let live = self
            .store
            .find(&Owner::Guest(token.hash()))
            .await?
            .is_some_and(|c| !is_expired(c.touched_at, self.config.guest_ttl, now));
        if live {
            self.merge_token(user, token, now).await?;
        }
        Ok(())
    }

    async fn merge_token(&self, user: Uuid, token: &CartToken, now: OffsetDateTime) -> CartResult<MergeOutcome> {
        let outcome = self
            .store
            .merge(&Merge {
                token: token.hash(),
                user,
                limits: self.limits(),
                now,
                guest_cutoff: self.cutoff(CartKind::Guest, now),
                user_cutoff: self.cutoff(CartKind::User, now),
            })
            .await?;
        if let MergeOutcome::Merged { lines, dropped } = &outcome {
            metrics::counter!("carts_merged_total").increment(1);
            tracing::info!(%user, lines, dropped = dropped.len(), "merged a guest cart");
        }
        Ok(outcome)
    }

    // ---- reads --------------------------------------------------------------------------------

    /// Current products and stock of `skus`, asked in one batch call each, concurrently.
    async fn price(&self, skus: &[Sku]) -> CartResult<(BTreeMap<Sku, Product>, BTreeMap<Sku, i64>)> {
        if skus.is_empty() {
            return Ok((BTreeMap::new(), BTreeMap::new()));
        }
        let (products, available) = tokio::join!(self.pricing.products(skus), self.pricing.availability(skus));
        Ok((products?, available?))
    }

    async fn snapshot_of(&self, cart: StoredCart) -> CartResult<CartSnapshot> {
        let kind = if cart.user_id.is_some() {
            CartKind::User
        } else {
            CartKind::Guest
        };
        let skus: Vec<Sku> = cart.lines.iter().map(|l| l.sku.clone()).collect();
        let (products, available) = self.price(&skus).await?;
        Ok(CartSnapshot {
            id: cart.id,
            kind,
            priced: price_cart(cart.lines, &products, &available),
            touched_at: cart.touched_at,
            expires_at: cart.touched_at + self.ttl(kind),
        })
    }

    /// The caller's cart as it is now, priced at read time.
    pub async fn view(&self, caller: &Caller) -> CartResult<CartSnapshot> {
        let cart = self.resolve(caller).await?;
        let now = now();
        let kind = if cart.user_id.is_some() {
            CartKind::User
        } else {
            CartKind::Guest
        };
        let every = TOUCH_EVERY.min(self.ttl(kind) / 10);
        if cart.touched_at + every <= now {
            self.store.touch(cart.id, now, truncate(now - every)).await?;
        }
        self.snapshot_of(cart).await
    }

    /// Re-reads the cart after a write.
    async fn reread(&self, id: CartId, caller: &Caller) -> CartResult<CartSnapshot> {
        let cart = self.resolve(caller).await?;
        if cart.id != id {
            return Err(StoreError::CartGone.into());
        }
        self.snapshot_of(cart).await
    }

    // ---- writes -------------------------------------------------------------------------------

    /// A new, empty guest cart and its token (shown once; only its hash is stored).
    pub async fn create_guest(&self) -> CartResult<(CartToken, CartSnapshot)> {
        let token = CartToken::generate();
        let cart = self.store.create_guest(CartId::new(), &token.hash(), now()).await?;
        Ok((token, self.snapshot_of(cart).await?))
    }

    /// The active product `sku` and its available units; 422 `sku` when it is not for sale.
    async fn sellable(&self, sku: &Sku) -> CartResult<(Product, i64)> {
        let (mut products, available) = self.price(std::slice::from_ref(sku)).await?;
        let product = products
            .remove(sku)
            .ok_or_else(|| CartError::invalid("sku", format!("{sku} is not a product for sale")))?;
        Ok((product, available.get(sku).copied().unwrap_or(0)))
    }

    fn snapshot(product: &Product) -> Snapshot {
        Snapshot {
            product_id: product.id,
            name: product.name.clone(),
            price: product.price,
        }
    }

    /// Adds `quantity` units of `sku` (to the existing line, if any).
    pub async fn add_item(&self, caller: &Caller, sku: &str, quantity: i64) -> CartResult<CartSnapshot> {
        let mut errors = Vec::new();
        let sku = parse_sku(sku).map_err(|e| errors.push(e)).ok();
        let quantity = parse_quantity(quantity, self.limits())
            .map_err(|m| errors.push(FieldError::new("quantity", m)))
            .ok();
        let (Some(sku), Some(quantity)) = (sku, quantity) else {
            return Err(CartError::Validation(errors));
        };
        let cart = self.resolve(caller).await?;
        let (product, available) = self.sellable(&sku).await?;
        let outcome = self
            .store
            .add_item(&AddItem {
                cart: cart.id,
                sku: sku.clone(),
                quantity,
                snapshot: Self::snapshot(&product),
                available,
                limits: self.limits(),
                now: now(),
            })
            .await?;
        match outcome {
            LineOutcome::Written(_) => {
                metrics::counter!("cart_items_added_total").increment(quantity as u64);
                self.reread(cart.id, caller).await
            }
            LineOutcome::Refused(r) => Err(refused(r, &sku)),
            LineOutcome::NoSuchLine => Err(CartError::Internal(anyhow::anyhow!("adding reported a missing line"))),
        }
    }

    /// Sets the line of `sku` to `quantity`; 0 removes it.
    pub async fn set_item(&self, caller: &Caller, sku: &str, quantity: i64) -> CartResult<CartSnapshot> {
        let sku = parse_sku(sku).map_err(|e| CartError::Validation(vec![e]))?;
        if quantity == 0 {
            return self.remove_item(caller, sku.as_str()).await;
        }
        let quantity = parse_quantity(quantity, self.limits())
            .map_err(|m| CartError::invalid("quantity", format!("{m} (0 removes the line)")))?;
        let cart = self.resolve(caller).await?;
        if !cart.lines.iter().any(|l| l.sku == sku) {
            return Err(CartError::NotFound(format!("the cart holds no {sku}")));
        }
        let (product, available) = self.sellable(&sku).await?;
        let outcome = self
            .store
            .set_item(&SetItem {
                cart: cart.id,
                sku: sku.clone(),
                quantity,
                snapshot: Self::snapshot(&product),
                available,
                now: now(),
            })
            .await?;
        match outcome {
            LineOutcome::Written(_) => self.reread(cart.id, caller).await,
            LineOutcome::Refused(r) => Err(refused(r, &sku)),
            LineOutcome::NoSuchLine => Err(CartError::NotFound(format!("the cart holds no {sku}"))),
        }
    }

    pub async fn remove_item(&self, caller: &Caller, sku: &str) -> CartResult<CartSnapshot> {
        let sku = parse_sku(sku).map_err(|e| CartError::Validation(vec![e]))?;
        let cart = self.resolve(caller).await?;
        if !self.store.remove_item(cart.id, &sku, now()).await? {
            return Err(CartError::NotFound(format!("the cart holds no {sku}")));
        }
        self.reread(cart.id, caller).await
    }

    /// Removes every line.
    pub async fn clear(&self, caller: &Caller) -> CartResult<CartSnapshot> {
        let cart = self.resolve(caller).await?;
        self.store.clear(cart.id, now()).await?;
        self.reread(cart.id, caller).await
    }

    /// Merges the guest cart of `token` into the user's cart. Merging a token this user already
    /// merged is a no-op; a token without a live cart is a 404.
    pub async fn merge(&self, user: Uuid, token: &str) -> CartResult<CartSnapshot> {
        let token = CartToken::parse(token).map_err(|m| CartError::invalid("cart_token", m))?;
        match self.merge_token(user, &token, now()).await? {
            MergeOutcome::Merged { .. } | MergeOutcome::AlreadyMerged => {}
            MergeOutcome::NoSuchCart => return Err(CartError::gone()),
        }
        self.view(&Caller {
            user: Some(user),
            token: None,
        })
        .await
    }

    // ---- reactions and housekeeping -----------------------------------------------------------

    /// An order was placed from `user`'s cart at `placed_at`: its lines go, except those changed
    /// since. Idempotent.
    pub async fn order_placed(
        &self,
        user: Uuid,
        placed_at: OffsetDateTime,
        ordered: &[(String, u32)],
    ) -> anyhow::Result<u64> {
        Ok(self.store.clear_ordered(user, truncate(placed_at), ordered).await?)
    }

    /// Deletes carts inactive past their TTL; returns how many.
    pub async fn expire_due(&self, now: OffsetDateTime) -> anyhow::Result<u64> {
        let guest = self.cutoff(CartKind::Guest, now);
        let user = self.cutoff(CartKind::User, now);
        let mut total = 0;
        loop {
            let deleted = self.store.delete_expired(guest, user, SWEEP_BATCH).await?;
            total += deleted;
            if deleted < u64::from(SWEEP_BATCH) {
                break;
            }
        }
        if total > 0 {
            metrics::counter!("carts_expired_total").increment(total);
            tracing::info!(carts = total, "deleted expired carts");
        }
        Ok(total)
    }

    pub async fn refresh_metrics(&self) -> anyhow::Result<()> {
        let (guest, user) = self.store.counts().await?;
        metrics::gauge!("carts_active", "kind" => "guest").set(guest as f64);
        metrics::gauge!("carts_active", "kind" => "user").set(user as f64);
        Ok(())
    }
}
