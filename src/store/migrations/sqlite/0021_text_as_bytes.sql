-- PostgreSQL's text columns compare as bytes from here on (see its 0021). SQLite's already do
-- (BINARY, its default collation); nothing changes here.
SELECT 1;
