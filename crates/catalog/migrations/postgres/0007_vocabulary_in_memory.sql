-- Search keeps the words it corrects typos to in memory now (catalog::service, read from ts_stat
-- over the stored search vectors at most once a minute): nothing reads the view any more.
DROP MATERIALIZED VIEW IF EXISTS catalog_words;
