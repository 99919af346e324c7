//! Coupons as admins manage them; checkout applies them (`super::checkout`).

use platform::FieldError;
use platform::money::MoneyInput;
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Caller, OrderError, OrderingService, Result, now};
use crate::domain::{Coupon, CouponKind, Currency, parse_coupon_code};
use crate::views::{CouponView, coupon_view};

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCoupon {
    /// `[A-Z0-9-]{3,32}`, case-insensitive.
    #[schema(example = "WELCOME10")]
    pub code: String,
    /// `percentage` or `fixed`.
    pub kind: String,
    /// Percentage coupons: 1 to 100.
    #[serde(default)]
    pub percent: Option<u32>,
    /// Fixed coupons: the amount off, `{amount, currency}` (the order currency when `currency` is
    /// left out; a bare integer of minor units is still accepted).
    #[serde(default)]
    pub amount: Option<MoneyInput>,
    /// Deprecated: the currency of a bare-integer `amount`.
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_from: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_until: Option<OffsetDateTime>,
    #[serde(default)]
    pub max_uses: Option<i64>,
    #[serde(default)]
    pub min_subtotal: Option<MoneyInput>,
}

impl OrderingService {
    pub async fn create_coupon(&self, caller: &Caller, req: NewCoupon) -> Result<CouponView> {
        if !caller.admin {
            return Err(OrderError::Forbidden("requires role admin".into()));
        }
        let mut errors = Vec::new();
        let code = parse_coupon_code(&req.code)
            .map_err(|m| errors.push(FieldError::new("code", m)))
            .ok();
        let kind = match req.kind.as_str() {
            "percentage" => match req.percent {
                Some(p) if (1..=100).contains(&p) && req.amount.is_none() => Some(CouponKind::Percentage(p * 100)),
                _ => {
                    errors.push(FieldError::new(
                        "percent",
                        "percentage coupons need percent 1 to 100 (and no amount)",
                    ));
                    None
                }
            },
            "fixed" => {
                let named = req
                    .amount
                    .as_ref()
                    .and_then(MoneyInput::currency)
                    .or(req.currency.as_deref());
                let currency = match named {
                    None => Some(self.config.currency),
                    Some(c) => Currency::parse(c)
                        .map_err(|m| errors.push(FieldError::new("currency", m)))
                        .ok(),
                };
                match (req.amount.as_ref().map(MoneyInput::amount), currency) {
                    (Some(a), Some(currency)) if a > 0 && a <= 100_000_000 && req.percent.is_none() => {
                        Some(CouponKind::Fixed { amount: a, currency })
                    }
                    (_, Some(_)) => {
                        errors.push(FieldError::new(
                            "amount",
                            "fixed coupons need amount 1 to 100000000 (and no percent)",
                        ));
                        None
                    }
                    _ => None,
                }
            }
            _ => {
                errors.push(FieldError::new("kind", "must be percentage or fixed"));
                None
            }
        };
        if let (Some(from), Some(until)) = (req.valid_from, req.valid_until)
            && until <= from
        {
            errors.push(FieldError::new("valid_until", "must be after valid_from"));
        }
        if req.max_uses.is_some_and(|m| m < 1) {
            errors.push(FieldError::new("max_uses", "must be at least 1"));
        }
        if req.min_subtotal.as_ref().is_some_and(|m| m.amount() < 0) {
            errors.push(FieldError::new("min_subtotal", "must not be negative"));
        }
        if let Some(c) = req.min_subtotal.as_ref().and_then(MoneyInput::currency)
            && !c.eq_ignore_ascii_case(self.config.currency.as_str())
        {
            errors.push(FieldError::new(
                "min_subtotal.currency",
                format!("orders are taken in {} only", self.config.currency),
            ));
        }
        let (Some(code), Some(kind), true) = (code, kind, errors.is_empty()) else {
            return Err(OrderError::Validation(errors));
        };
        let coupon = Coupon {
            code,
            kind,
            valid_from: req.valid_from,
            valid_until: req.valid_until,
            max_uses: req.max_uses,
            uses: 0,
            min_subtotal: req.min_subtotal.as_ref().map(MoneyInput::amount),
            active: true,
            created_at: now(),
        };
        if !self.store.create_coupon(&coupon).await? {
            return Err(OrderError::Conflict {
                detail: format!("coupon {} exists", coupon.code),
                errors: vec![FieldError::new("code", "is taken")],
            });
        }
        Ok(coupon_view(&coupon, &self.config.currency))
    }

    pub async fn coupons(&self, caller: &Caller) -> Result<Vec<CouponView>> {
        if !caller.admin {
            return Err(OrderError::Forbidden("requires role admin".into()));
        }
        Ok(self
            .store
            .coupons()
            .await?
            .iter()
            .map(|c| coupon_view(c, &self.config.currency))
            .collect())
    }

    pub async fn deactivate_coupon(&self, caller: &Caller, code: &str) -> Result<CouponView> {
        if !caller.admin {
            return Err(OrderError::Forbidden("requires role admin".into()));
        }
        let code = parse_coupon_code(code).map_err(|_| OrderError::NotFound("no such coupon".into()))?;
        self.store
            .deactivate_coupon(&code)
            .await?
            .map(|c| coupon_view(&c, &self.config.currency))
            .ok_or_else(|| OrderError::NotFound("no such coupon".into()))
    }
}
