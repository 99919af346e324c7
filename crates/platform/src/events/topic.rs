//! AMQP topic matching, so the in-process bus routes exactly as RabbitMQ does.

use std::str::Split;

/// True when `routing_key` matches `pattern` (`*` = one word, `#` = zero or more words).
/// Every published event is matched against every subscription's patterns, so this walks the
/// words in place: collecting them into two vectors per match was 1% of an embedded checkout.
pub fn matches(pattern: &str, routing_key: &str) -> bool {
    match_words(pattern.split('.'), routing_key.split('.'))
}

fn match_words(mut pattern: Split<'_, char>, mut key: Split<'_, char>) -> bool {
    match pattern.next() {
        None => key.next().is_none(),
        // `#` takes none of the remaining words, then one, then two...
        Some("#") => loop {
            if match_words(pattern.clone(), key.clone()) {
                return true;
            }
            if key.next().is_none() {
                return false;
            }
        },
        Some(word) => match key.next() {
            Some(k) => (word == "*" || word == k) && match_words(pattern, key),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn topic_patterns_follow_amqp_rules() {
        assert!(matches("catalog.product.created", "catalog.product.created"));
        assert!(matches("catalog.product.*", "catalog.product.updated"));
        assert!(!matches("catalog.product.*", "catalog.product"));
        assert!(!matches("catalog.*", "catalog.product.updated"));
        assert!(matches("catalog.#", "catalog.product.updated"));
        assert!(matches("catalog.#", "catalog"));
        assert!(matches("#", "anything.at.all"));
        assert!(matches("*.stock.low", "inventory.stock.low"));
        assert!(!matches("inventory.stock.low", "inventory.stock.lowest"));
        // `#` in the middle or first: none, one or several words, then the rest must match.
        assert!(matches("orders.#.confirmed", "orders.confirmed"));
        assert!(matches("orders.#.confirmed", "orders.order.v2.confirmed"));
        assert!(!matches("orders.#.confirmed", "orders.order.cancelled"));
        assert!(matches("#.low", "inventory.stock.low"));
        assert!(!matches("#.low", "inventory.stock.low.extra"));
        assert!(matches("#.#", "a"));
        assert!(!matches("*", "a.b"));
    }
}
