-- 001_schema.sql - tables of the photo-grouping pipeline.
--
-- Applied once by store_migrate() inside a transaction; keep transaction
-- control (BEGIN/COMMIT, CREATE INDEX CONCURRENTLY) out of this file.
--
-- Rows are rewritten only when their content changes, so a column that names
-- a run names the run that last changed the row, never the last run that saw
-- it: running the same input twice must leave these tables identical.

CREATE TABLE models (
	id             bigserial PRIMARY KEY,
	backbone       text NOT NULL,
	weights_path   text NOT NULL,
	weights_sha256 text NOT NULL,
	embedding_dim  integer NOT NULL CHECK (embedding_dim > 0),
	image_height   integer NOT NULL CHECK (image_height > 0),
	image_width    integer NOT NULL CHECK (image_width > 0),
	threshold      double precision,
	metrics        jsonb,
	status         text NOT NULL CHECK (status IN ('active', 'candidate', 'retired')),
	created_at     timestamptz NOT NULL DEFAULT now(),
	promoted_at    timestamptz,
	UNIQUE (backbone, weights_sha256)
);
COMMENT ON COLUMN models.threshold IS
	'cosine similarity above which two photos of an ad join a group; NULL: none tuned';

-- At most one model is active; store_model_register/promote retire the old one.
CREATE UNIQUE INDEX models_one_active ON models ((true)) WHERE status = 'active';

CREATE TABLE pipeline_runs (
	id              bigserial PRIMARY KEY,
	kind            text NOT NULL CHECK (kind IN ('nightly', 'backfill', 'retrain')),
	date            date,
	started_at      timestamptz NOT NULL DEFAULT now(),
	finished_at     timestamptz,
	status          text NOT NULL DEFAULT 'running'
	                CHECK (status IN ('running', 'ok', 'partial', 'failed')),
	photos_in       bigint,
	photos_embedded bigint,
	photos_failed   bigint,
	ads_grouped     bigint,
	elapsed_s       double precision,
	host            text,
	version         text,
	model_id        bigint REFERENCES models (id)
);
CREATE INDEX pipeline_runs_started_at ON pipeline_runs (started_at);

CREATE TABLE ad_images (
	image_id       text PRIMARY KEY,
	ad_id          text NOT NULL,
	url            text,
	created_at     timestamptz,
	source         text,
	status         text NOT NULL CHECK (status IN ('embedded', 'failed')),
	failure_stage  text,
	failure_reason text,
	width          integer CHECK (width > 0),
	height         integer CHECK (height > 0),
	content_sha256 text,
	first_run_id   bigint REFERENCES pipeline_runs (id),
	changed_run_id bigint REFERENCES pipeline_runs (id),
	CHECK ((status = 'failed') = (failure_stage IS NOT NULL))
);
COMMENT ON COLUMN ad_images.created_at IS 'when the ad platform received the photo';
COMMENT ON COLUMN ad_images.source IS
	'where the event came from: file:line or topic/partition@offset';
COMMENT ON COLUMN ad_images.first_run_id IS 'run that first stored the photo';
COMMENT ON COLUMN ad_images.changed_run_id IS
	'run that last changed this row (not the last run that saw it)';
CREATE INDEX ad_images_ad_id ON ad_images (ad_id);
CREATE INDEX ad_images_created_at ON ad_images (created_at);
-- Failed photos are few; a partial index finds them without indexing the rest.
CREATE INDEX ad_images_failed ON ad_images (image_id) WHERE status = 'failed';

-- A 512-float row is ~2.1 kB, just over the default TOAST threshold: keeping
-- rows inline up to a full page avoids a TOAST lookup per embedding on reads
-- and a compression attempt (floats hardly compress) on every write.
CREATE TABLE image_embeddings (
	image_id       text NOT NULL REFERENCES ad_images (image_id) ON DELETE CASCADE,
	model_id       bigint NOT NULL REFERENCES models (id),
	embedding      real[] NOT NULL,
	dim            integer NOT NULL,
	content_sha256 text,
	run_id         bigint REFERENCES pipeline_runs (id),
	PRIMARY KEY (image_id, model_id),
	CHECK (array_ndims(embedding) = 1 AND cardinality(embedding) = dim)
) WITH (toast_tuple_target = 8160);
COMMENT ON COLUMN image_embeddings.content_sha256 IS
	'hash of the photo the embedding was computed from; rewritten only when it changes';
COMMENT ON COLUMN image_embeddings.run_id IS 'run that computed the stored embedding';
CREATE INDEX image_embeddings_model ON image_embeddings (model_id);

CREATE TABLE image_groups (
	image_id text NOT NULL REFERENCES ad_images (image_id) ON DELETE CASCADE,
	model_id bigint NOT NULL REFERENCES models (id),
	ad_id    text NOT NULL,
	group_id text NOT NULL,
	run_id   bigint REFERENCES pipeline_runs (id),
	PRIMARY KEY (image_id, model_id)
);
COMMENT ON COLUMN image_groups.run_id IS 'run that last changed the photo''s group';
CREATE INDEX image_groups_model_ad ON image_groups (model_id, ad_id);
CREATE INDEX image_groups_ad_id ON image_groups (ad_id);

-- Items that could not be processed. Photos use the key 'image:<image_id>';
-- other items (a bad CSV line, a poison event) name their origin.
CREATE TABLE failures (
	key        text PRIMARY KEY,
	image_id   text,
	ad_id      text,
	stage      text NOT NULL,
	reason     text NOT NULL,
	run_id     bigint REFERENCES pipeline_runs (id),
	created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN failures.run_id IS 'run that recorded the current stage and reason';
CREATE INDEX failures_created_at ON failures (created_at);
CREATE INDEX failures_ad_id ON failures (ad_id);
