-- One database per service: each service owns its data and no other service reads it.
-- Run once by the postgres image on an empty data directory, as POSTGRES_USER, who
-- therefore owns them. `ates migrate` creates its tables (and a database still missing).
CREATE DATABASE ates_auth;
CREATE DATABASE ates_tasks;
CREATE DATABASE ates_accounting;
CREATE DATABASE ates_analytics;
