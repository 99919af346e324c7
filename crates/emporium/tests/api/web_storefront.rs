//! web_storefront
