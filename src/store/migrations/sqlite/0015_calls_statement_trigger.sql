-- PostgreSQL's calls trigger runs once per statement from here on (see its 0015). SQLite has
-- no statement triggers; its row trigger (0013) stays, and nothing changes here.
SELECT 1;
