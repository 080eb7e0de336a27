-- 004_models.sql - the model registry for retraining: how each model is run,
-- what it was trained on, where it came from, and every change of the active
-- model, so that a rollback knows which model was active before.

ALTER TABLE models
	ADD COLUMN inference    jsonb,
	ADD COLUMN training     jsonb,
	ADD COLUMN sidecar_path text,
	ADD COLUMN parent_id    bigint REFERENCES models (id),
	ADD COLUMN run_id       bigint REFERENCES pipeline_runs (id);
COMMENT ON COLUMN models.inference IS
	'how to run the model: pool, gem_p, normalization, mean, std (pixel units); '
	'NULL: as the pipeline''s model config says';
COMMENT ON COLUMN models.training IS
	'training data summary, seed and hyperparameters; NULL for models not trained here';
COMMENT ON COLUMN models.sidecar_path IS 'JSON file of metadata written beside the weights';
COMMENT ON COLUMN models.parent_id IS 'registered model whose weights training started from';
COMMENT ON COLUMN models.run_id IS 'retrain run that produced the model';

-- One row per change of the active model. A rollback undoes the newest
-- promotion that is not undone yet and makes its previous model active again.
CREATE TABLE model_promotions (
	id                bigserial PRIMARY KEY,
	model_id          bigint NOT NULL REFERENCES models (id),
	previous_model_id bigint REFERENCES models (id),
	kind              text NOT NULL
	                  CHECK (kind IN ('first', 'gate', 'manual', 'rollback')),
	reason            text,
	run_id            bigint REFERENCES pipeline_runs (id),
	undone_at         timestamptz,
	created_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN model_promotions.kind IS
	'first: the first active model; gate: a retrain that beat the active model; '
	'manual: --promote; rollback: --rollback';
COMMENT ON COLUMN model_promotions.undone_at IS 'when a rollback undid this promotion';
CREATE INDEX model_promotions_model ON model_promotions (model_id);

-- The model active when this migration runs was made active before promotions
-- were recorded; it gets a 'first' row so that later rollbacks end there.
INSERT INTO model_promotions (model_id, kind, reason)
SELECT id, 'first', 'active before promotions were recorded' FROM models
WHERE status = 'active';
