//! AMQP topic matching, so the in-process bus routes exactly as RabbitMQ does.

/// True when `routing_key` matches `pattern` (`*` = one word, `#` = zero or more words).
pub fn matches(pattern: &str, routing_key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = routing_key.split('.').collect();
    match_words(&pattern, &key)
}

fn match_words(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| match_words(rest, &key[skip..])),
        Some((&word, rest)) => match key.split_first() {
            Some((&k, key_rest)) => (word == "*" || word == k) && match_words(rest, key_rest),
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
    }
}
