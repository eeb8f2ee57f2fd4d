-- Running totals of each person's usage per model family, at the end of
-- every 15-minute bucket that holds an event (every time zone's offset is
-- a whole number of quarter hours). The usage since any instant is the
-- running total now less the running total then, plus the events inside
-- the two partial buckets: a check reads a few rows per window, however
-- long the history. Kept by a trigger on `events`, under the person's row
-- lock (the lock checks take), so concurrent writers cannot interleave.
CREATE TABLE usage_running (
    user_id                     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family                      TEXT NOT NULL,
    bucket                      BIGINT NOT NULL,
    prompts                     BIGINT NOT NULL,
    credits                     BIGINT NOT NULL,
    input_tokens                BIGINT NOT NULL,
    output_tokens               BIGINT NOT NULL,
    cache_creation_input_tokens BIGINT NOT NULL,
    cache_read_input_tokens     BIGINT NOT NULL,
    PRIMARY KEY (user_id, family, bucket)
);

CREATE FUNCTION ccgate_add_usage() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    b BIGINT := NEW.at / 900000;
    prev usage_running%ROWTYPE;
BEGIN
    IF NEW.family IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM users WHERE id = NEW.user_id FOR UPDATE;
    IF NOT EXISTS (SELECT 1 FROM usage_running
                   WHERE user_id = NEW.user_id AND family = NEW.family AND bucket = b) THEN
        SELECT * INTO prev FROM usage_running
        WHERE user_id = NEW.user_id AND family = NEW.family AND bucket < b
        ORDER BY bucket DESC LIMIT 1;
        INSERT INTO usage_running VALUES (
            NEW.user_id, NEW.family, b,
            COALESCE(prev.prompts, 0), COALESCE(prev.credits, 0),
            COALESCE(prev.input_tokens, 0), COALESCE(prev.output_tokens, 0),
            COALESCE(prev.cache_creation_input_tokens, 0),
            COALESCE(prev.cache_read_input_tokens, 0));
    END IF;
    -- This bucket and every later one (an event may arrive late, from a
    -- device that was offline).
    UPDATE usage_running SET
        prompts = prompts + NEW.prompts,
        credits = credits + NEW.credits,
        input_tokens = input_tokens + NEW.input_tokens,
        output_tokens = output_tokens + NEW.output_tokens,
        cache_creation_input_tokens = cache_creation_input_tokens + NEW.cache_creation_input_tokens,
        cache_read_input_tokens = cache_read_input_tokens + NEW.cache_read_input_tokens
    WHERE user_id = NEW.user_id AND family = NEW.family AND bucket >= b;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_add_usage AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION ccgate_add_usage();

-- Events already stored (none where the schema is new).
INSERT INTO usage_running
SELECT user_id, family, bucket,
       SUM(p) OVER w, SUM(c) OVER w, SUM(i) OVER w, SUM(o) OVER w, SUM(cc) OVER w, SUM(cr) OVER w
FROM (SELECT user_id, family, at / 900000 AS bucket,
             SUM(prompts) p, SUM(credits) c, SUM(input_tokens) i, SUM(output_tokens) o,
             SUM(cache_creation_input_tokens) cc, SUM(cache_read_input_tokens) cr
      FROM events WHERE family IS NOT NULL GROUP BY user_id, family, at / 900000) per_bucket
WINDOW w AS (PARTITION BY user_id, family ORDER BY bucket);
