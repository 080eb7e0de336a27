-- 003_kafka.sql - where each failed item came from, as columns to filter on.
--
-- A failed photo's failure row is keyed 'image:<id>' and its origin is the
-- photo's source; an item that never had an identity (a poison event, a bad
-- CSV line) is keyed by its origin itself: 'topic/partition@offset' or
-- 'file:line'.

CREATE VIEW failure_sources AS
SELECT f.key,
       f.image_id,
       f.ad_id,
       f.stage,
       f.reason,
       f.run_id,
       f.created_at,
       o.origin,
       substring(o.origin FROM '^([A-Za-z0-9._-]+)/[0-9]+@[0-9]+$') AS kafka_topic,
       substring(o.origin FROM '^[A-Za-z0-9._-]+/([0-9]+)@[0-9]+$')::integer AS kafka_partition,
       substring(o.origin FROM '^[A-Za-z0-9._-]+/[0-9]+@([0-9]+)$')::bigint AS kafka_offset,
       substring(o.origin FROM '^(.+):[0-9]+$') AS csv_file,
       substring(o.origin FROM '^.+:([0-9]+)$')::bigint AS csv_line
FROM failures f
LEFT JOIN ad_images i ON f.key = 'image:' || i.image_id
CROSS JOIN LATERAL (SELECT CASE WHEN f.key LIKE 'image:%' THEN i.source ELSE f.key END
                    AS origin) o;

COMMENT ON VIEW failure_sources IS
	'failures with their origin split into Kafka topic/partition/offset or CSV file/line';
