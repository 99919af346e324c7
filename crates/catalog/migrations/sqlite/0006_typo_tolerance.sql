-- SQLite flavour of ../postgres/0005_typo_tolerance.sql.
-- The words of the search index, per column, kept by FTS5 itself: search looks up words close to
-- a misspelled one here (names and brands only, see catalog::store::sql::term_candidates).
CREATE VIRTUAL TABLE products_fts_words USING fts5vocab(products_fts, 'col');
