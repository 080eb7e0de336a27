-- 005_operations.sql - what operators and analysts read: runs that were
-- stopped or failed and why, views for the usual questions, and the indexes
-- that keep the per-ad and per-run questions fast on millions of photos.
--
-- Applied once by store_migrate() inside a transaction.

-- A run stopped by a signal ends as 'stopped' (what it processed is written);
-- a failed or stopped run says why in error. The status check is rebuilt from
-- the one in place, so values that other migrations allow are kept.
ALTER TABLE pipeline_runs ADD COLUMN error text;
COMMENT ON COLUMN pipeline_runs.error IS
	'why the run failed or stopped; NULL when it finished';
DO $$
DECLARE
	def text;
BEGIN
	SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
	WHERE conrelid = 'pipeline_runs'::regclass AND conname = 'pipeline_runs_status_check';
	IF def IS NULL THEN
		RAISE EXCEPTION 'pipeline_runs_status_check not found';
	END IF;
	IF position('''stopped''' IN def) = 0 THEN
		EXECUTE 'ALTER TABLE pipeline_runs DROP CONSTRAINT pipeline_runs_status_check';
		EXECUTE 'ALTER TABLE pipeline_runs ADD CONSTRAINT pipeline_runs_status_check '
			|| replace(def, 'ARRAY[', 'ARRAY[''stopped''::text, ');
	END IF;
END
$$;

-- failures of one run; photos a run stored first
CREATE INDEX failures_run_id ON failures (run_id);
CREATE INDEX ad_images_first_run_id ON ad_images (first_run_id);
-- (model, ad, group) lets "ads with more than one bicycle" read the index
-- alone, in ad order, without visiting the table.
CREATE INDEX image_groups_model_ad_group ON image_groups (model_id, ad_id, group_id);
CREATE INDEX pipeline_runs_kind_date ON pipeline_runs (kind, date, id);

-- One row per photo grouped by the active model: its group, its url and how
-- many photos its group and its ad have. Filter by ad_id.
CREATE VIEW ad_group_photos AS
SELECT g.ad_id,
       g.group_id,
       g.image_id,
       i.url,
       i.created_at,
       count(*) OVER (PARTITION BY g.ad_id, g.group_id) AS group_photos,
       count(*) OVER (PARTITION BY g.ad_id) AS ad_photos,
       g.model_id,
       g.run_id
FROM image_groups g
JOIN models m ON m.id = g.model_id AND m.status = 'active'
JOIN ad_images i ON i.image_id = g.image_id;

-- Ads in which the active model sees more than one bicycle.
CREATE VIEW multi_bike_ads AS
SELECT g.ad_id,
       count(DISTINCT g.group_id) AS bikes,
       count(*) AS photos,
       array_agg(DISTINCT g.group_id) AS group_ids
FROM image_groups g
JOIN models m ON m.id = g.model_id AND m.status = 'active'
GROUP BY g.ad_id
HAVING count(DISTINCT g.group_id) > 1;

-- Possible strays: a photo alone in its group while its ad has other grouped
-- photos (a receipt, a chair, another bike shown once).
CREATE VIEW stray_photos AS
SELECT ad_id, image_id, url, created_at, group_id, ad_photos, model_id
FROM ad_group_photos
WHERE group_photos = 1 AND ad_photos > 1;

-- Items a run recorded as failed, with the stage and reason. A photo that
-- fails the same way again keeps the run that first recorded the reason (rows
-- change only when their content does); pipeline_runs.photos_failed counts
-- every failure a run saw.
CREATE VIEW run_failures AS
SELECT f.run_id,
       r.kind AS run_kind,
       r.date AS run_date,
       f.key,
       f.image_id,
       f.ad_id,
       f.stage,
       f.reason,
       i.url,
       f.created_at
FROM failures f
LEFT JOIN pipeline_runs r ON r.id = f.run_id
LEFT JOIN ad_images i ON i.image_id = f.image_id;

-- Every run with its counts, duration and rate; a run still going shows the
-- time so far.
CREATE VIEW run_history AS
SELECT r.id AS run_id,
       r.kind,
       r.date,
       r.status,
       r.started_at,
       r.finished_at,
       coalesce(r.elapsed_s,
                extract(epoch FROM coalesce(r.finished_at, now()) - r.started_at)::float8)
               AS duration_s,
       r.photos_in,
       r.photos_embedded,
       r.photos_failed,
       r.ads_grouped,
       round((r.photos_in / nullif(r.elapsed_s, 0))::numeric, 1) AS photos_per_s,
       (SELECT count(*) FROM failures f WHERE f.run_id = r.id) AS failures_recorded,
       r.model_id,
       r.host,
       r.version,
       r.error
FROM pipeline_runs r;

-- Every model with its metrics and how much it was used.
CREATE VIEW model_history AS
SELECT m.id AS model_id,
       m.status,
       m.backbone,
       m.embedding_dim,
       m.image_height,
       m.image_width,
       m.threshold,
       m.metrics,
       m.created_at,
       m.promoted_at,
       m.weights_path,
       m.weights_sha256,
       (SELECT count(*) FROM pipeline_runs r WHERE r.model_id = m.id) AS runs,
       (SELECT max(r.started_at) FROM pipeline_runs r WHERE r.model_id = m.id) AS last_run_at
FROM models m;
