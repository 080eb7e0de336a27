-- roles.sql - least-privilege roles, applied by an operator (not a migration).
--
-- The pipeline's role owns the database and so the tables its migrations
-- create: it writes them and nothing else. The analyst role may read the
-- views and nothing else: no table, no write, no DDL. Views read their tables
-- with their owner's rights, which is what lets analysts see results without
-- a grant on any table. Run as a superuser after the pipeline has migrated the
-- database once, and again after an upgrade (new views are granted then);
-- running it twice changes nothing.
--
--   psql -d bikes -v pipeline_role=pipeline-run -v analyst_role=pipeline_analyst \
--        -f /usr/local/share/pipeline-run/sql/roles.sql
--
-- Person accounts join the analyst role:  CREATE ROLE alice LOGIN IN ROLE pipeline_analyst;

\set ON_ERROR_STOP on
\if :{?pipeline_role}
\else
\set pipeline_role pipeline-run
\endif
\if :{?analyst_role}
\else
\set analyst_role pipeline_analyst
\endif

SELECT set_config('pipeline.role', :'pipeline_role', false),
       set_config('pipeline.analyst_role', :'analyst_role', false) \g /dev/null

DO $$
DECLARE
	owner_role text := current_setting('pipeline.role');
	analyst text := current_setting('pipeline.analyst_role');
	v record;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = owner_role) THEN
		RAISE EXCEPTION 'role % does not exist: create it first (createuser %)',
			owner_role, owner_role;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	               WHERE n.nspname = 'public' AND c.relname = 'pipeline_runs') THEN
		RAISE EXCEPTION 'no pipeline tables in %: run "pipeline-run migrate" as % first',
			current_database(), owner_role;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = analyst) THEN
		EXECUTE format('CREATE ROLE %I NOLOGIN', analyst);
	END IF;
	-- no write, no superuser-like attributes for the pipeline itself
	EXECUTE format('ALTER ROLE %I NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION',
		       owner_role);

	-- nobody but the owner may connect or create objects by default
	EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
	EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(),
		       owner_role);
	EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), analyst);
	REVOKE CREATE ON SCHEMA public FROM PUBLIC;
	EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', analyst);

	-- analysts: the views and nothing else
	EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC, %I', analyst);
	EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC, %I', analyst);
	FOR v IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	         WHERE n.nspname = 'public' AND c.relkind = 'v'
	           AND pg_get_userbyid(c.relowner) = owner_role
	LOOP
		EXECUTE format('GRANT SELECT ON %I TO %I', v.relname, analyst);
	END LOOP;
END
$$;

-- what was granted, for the operator's eyes
SELECT table_name AS analyst_may_read
FROM information_schema.role_table_grants
WHERE grantee = :'analyst_role' AND privilege_type = 'SELECT'
ORDER BY table_name;
