-- Each service owns its own database.
CREATE DATABASE tcr_subsidy OWNER tcr;
CREATE DATABASE tcr_reporting OWNER tcr;
