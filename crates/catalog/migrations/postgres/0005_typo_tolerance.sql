-- The words of product names and brands with the number of products using each, for search to
-- find words close to a misspelled one (catalog::store::sql::term_candidates). A materialized
-- view: catalog refreshes it when a search needs it and it is over a minute old. The query text
-- names `public.products`: pg_restore refreshes the view with an empty search_path.
CREATE MATERIALIZED VIEW catalog_words AS
    SELECT word, ndoc::bigint AS uses
    FROM ts_stat($$SELECT to_tsvector('simple'::regconfig, name || ' ' || coalesce(brand, ''))
                   FROM public.products WHERE deleted_at IS NULL AND status = 'active'$$);
-- Unique, so it can be refreshed CONCURRENTLY (searches keep reading the old rows meanwhile).
CREATE UNIQUE INDEX catalog_words_word ON catalog_words (word);
