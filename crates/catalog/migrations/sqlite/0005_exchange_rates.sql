-- Display currencies: how many units of each currency one unit of the shop's currency
-- (EMPORIUM_CATALOG_CURRENCY) buys, as integer millionths ("1.0856" is 1085600: no floats), with
-- the date the rate is for. Admins edit rows; `emporium rates import` loads an ECB file.
-- Prices are never stored converted: shoppers see conversions, orders are charged in the shop's
-- currency.
CREATE TABLE exchange_rates (
    currency    TEXT PRIMARY KEY,
    rate_micros BIGINT NOT NULL CHECK (rate_micros > 0),
    as_of       TEXT NOT NULL,
    source      TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
