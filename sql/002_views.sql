-- 002_views.sql - what analysts query: the groups of the active model.

-- Numeric ids sort as numbers ("9" before "10"), other ids after them in byte
-- order; COLLATE "C" keeps the order independent of the database locale.
CREATE FUNCTION image_id_order(id text) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT CASE WHEN id ~ '^[0-9]{1,100}$' THEN id::numeric END $$;

-- One row per (ad, group) of the active model.
CREATE VIEW ad_groups AS
SELECT g.ad_id,
       g.group_id,
       g.model_id,
       array_agg(g.image_id ORDER BY image_id_order(g.image_id) NULLS LAST,
                 g.image_id COLLATE "C") AS image_ids,
       count(*) AS photos
FROM image_groups g
JOIN models m ON m.id = g.model_id AND m.status = 'active'
GROUP BY g.ad_id, g.group_id, g.model_id;

-- One row per ad: its photos, how many were embedded or failed, and how many
-- groups the active model found among them.
CREATE VIEW ad_summary AS
SELECT i.ad_id,
       count(DISTINCT g.group_id) AS groups,
       count(*) AS photos,
       count(*) FILTER (WHERE i.status = 'embedded') AS photos_embedded,
       count(*) FILTER (WHERE i.status = 'failed') AS photos_failed,
       count(g.image_id) AS photos_grouped
FROM ad_images i
LEFT JOIN (image_groups g JOIN models m ON m.id = g.model_id AND m.status = 'active')
       ON g.image_id = i.image_id
GROUP BY i.ad_id;
