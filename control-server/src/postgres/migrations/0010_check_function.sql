-- The check in one statement, so one round trip: under the person's row
-- lock it counts and drops lapsed reservations, answers a turn that holds
-- one, reads the usage since each window start the policy needs (from the
-- running totals) and the pending prompts, and reserves the prompt when
-- every cap the server sent holds. The server turns the policy into those
-- caps (`quota::prompt_caps`, held to `evaluate` by a property test) and
-- writes the answer from the usage returned, with the same engine as on
-- SQLite.

-- Counts the hook clients' reservations among `gone` (already deleted) as
-- `request` events at the time they were allowed; returns the events.
CREATE FUNCTION ccgate_count_gone(p_now BIGINT, p_gone reservations[]) RETURNS JSONB
LANGUAGE plpgsql AS $$
DECLARE
    stored JSONB;
BEGIN
    WITH counted AS (
        INSERT INTO events (id, user_id, device_id, at, received_at, type, model, family, prompts,
                            credits, kind, turn_key, session_id, detail, count_reason)
        SELECT gen_random_uuid()::TEXT, g.user_id, g.device_id, g.created_at, p_now, 'request',
               g.model, g.family, g.prompts, g.credits, 'prompt', g.key, g.session_id,
               '{"source": "hook", "settled": "unreported"}'::JSONB, 'new_prompt'
        FROM unnest(p_gone) AS g
        WHERE g.counts_on_expiry
        RETURNING id, user_id, device_id, at, received_at, model, family, prompts, credits,
                  turn_key, session_id, detail, count_reason)
    SELECT COALESCE(jsonb_agg(to_jsonb(counted)), '[]'::JSONB) INTO stored FROM counted;
    RETURN stored;
END
$$;

-- Takes the person's row lock, drops their lapsed reservations and counts
-- the hook clients' ones (the check, and the leader's sweep).
CREATE FUNCTION ccgate_lapse(p_user BIGINT, p_now BIGINT) RETURNS JSONB
LANGUAGE plpgsql AS $$
DECLARE
    gone reservations[];
BEGIN
    PERFORM 1 FROM users WHERE id = p_user FOR UPDATE;
    WITH dropped AS (
        DELETE FROM reservations WHERE user_id = p_user AND expires_at <= p_now
        RETURNING reservations AS r)
    SELECT array_agg(dropped.r) INTO gone FROM dropped;
    RETURN ccgate_count_gone(p_now, gone);
END
$$;

-- `usage` holds, for each start (in order) and each of `p_families` (in
-- order), six figures: prompts, credits, input, output, cache creation
-- and cache read tokens recorded at or after the start. `pending` holds
-- the prompts and credits reserved, per family. Cap `k` says: the usage
-- since start number `p_cap_window[k]`, of `p_cap_family[k]` (all when
-- NULL), in the figures whose bits are set in `p_cap_columns[k]`, pending
-- included, is at most `p_cap_most[k]`.
CREATE FUNCTION ccgate_check(
    p_user BIGINT, p_device BIGINT, p_key TEXT, p_now BIGINT,
    p_hook BOOLEAN, p_session TEXT, p_family TEXT, p_model TEXT,
    p_families TEXT[], p_starts BIGINT[],
    p_reserve BOOLEAN, p_cost BIGINT, p_expires BIGINT,
    p_cap_window INT[], p_cap_family TEXT[], p_cap_columns INT[], p_cap_most BIGINT[],
    OUT counted JSONB, OUT held_credits BIGINT, OUT held_expires BIGINT,
    OUT usage BIGINT[], OUT pending BIGINT[], OUT reserved BOOLEAN)
LANGUAGE plpgsql AS $$
DECLARE
    gone reservations[];
    held RECORD;
    points BIGINT[] := p_starts || (p_now + 1);
    latest INT := cardinality(p_starts) + 1;
    family_count INT := cardinality(p_families);
    used BIGINT;
BEGIN
    counted := ccgate_lapse(p_user, p_now);
    reserved := FALSE;
    IF p_hook THEN
        -- The session's previous prompt was sent: it counts, and this
        -- check is decided anew.
        WITH dropped AS (
            DELETE FROM reservations WHERE device_id = p_device AND key = p_key
            RETURNING reservations AS r)
        SELECT array_agg(dropped.r) INTO gone FROM dropped;
        counted := counted || ccgate_count_gone(p_now, gone);
    ELSE
        SELECT r.credits, r.expires_at INTO held FROM reservations r
        WHERE r.device_id = p_device AND r.key = p_key AND r.expires_at > p_now;
        IF FOUND THEN
            held_credits := held.credits;
            held_expires := held.expires_at;
            RETURN;
        END IF;
    END IF;

    -- The running total before each point: the last full bucket's plus the
    -- events of the partial one; the usage since a start is the total
    -- before now + 1 ms less the total before the start.
    WITH before AS (
        SELECT p.i, f.j, ARRAY[
                   COALESCE(r.prompts, 0) + COALESCE(e.prompts, 0),
                   COALESCE(r.credits, 0) + COALESCE(e.credits, 0),
                   COALESCE(r.input_tokens, 0) + COALESCE(e.input_tokens, 0),
                   COALESCE(r.output_tokens, 0) + COALESCE(e.output_tokens, 0),
                   COALESCE(r.cache_creation_input_tokens, 0)
                       + COALESCE(e.cache_creation_input_tokens, 0),
                   COALESCE(r.cache_read_input_tokens, 0) + COALESCE(e.cache_read_input_tokens, 0)
               ]::BIGINT[] AS v
        FROM unnest(points) WITH ORDINALITY AS p(t, i)
        CROSS JOIN unnest(p_families) WITH ORDINALITY AS f(family, j)
        LEFT JOIN LATERAL (
            SELECT u.prompts, u.credits, u.input_tokens, u.output_tokens,
                   u.cache_creation_input_tokens, u.cache_read_input_tokens
            FROM usage_running u
            WHERE u.user_id = p_user AND u.family = f.family AND u.bucket < p.t / 900000
            ORDER BY u.bucket DESC LIMIT 1) r ON TRUE
        LEFT JOIN LATERAL (
            SELECT SUM(ev.prompts)::BIGINT AS prompts, SUM(ev.credits)::BIGINT AS credits,
                   SUM(ev.input_tokens)::BIGINT AS input_tokens,
                   SUM(ev.output_tokens)::BIGINT AS output_tokens,
                   SUM(ev.cache_creation_input_tokens)::BIGINT AS cache_creation_input_tokens,
                   SUM(ev.cache_read_input_tokens)::BIGINT AS cache_read_input_tokens
            FROM events ev
            WHERE ev.user_id = p_user AND ev.family = f.family
              AND ev.at >= (p.t / 900000) * 900000 AND ev.at < p.t) e ON TRUE)
    SELECT array_agg(GREATEST(through.v[m] - b.v[m], 0) ORDER BY b.i, b.j, m) INTO usage
    FROM before b
    JOIN before through ON through.i = latest AND through.j = b.j
    CROSS JOIN generate_series(1, 6) AS m
    WHERE b.i < latest;

    SELECT array_agg(u.v ORDER BY f.j, u.m) INTO pending
    FROM unnest(p_families) WITH ORDINALITY AS f(family, j)
    CROSS JOIN LATERAL (
        SELECT COALESCE(SUM(r.prompts), 0)::BIGINT AS prompts,
               COALESCE(SUM(r.credits), 0)::BIGINT AS credits
        FROM reservations r
        WHERE r.user_id = p_user AND r.family = f.family AND r.expires_at > p_now) s
    CROSS JOIN LATERAL unnest(ARRAY[s.prompts, s.credits]) WITH ORDINALITY AS u(v, m);

    IF NOT p_reserve THEN
        RETURN;
    END IF;
    FOR k IN 1 .. COALESCE(cardinality(p_cap_most), 0) LOOP
        SELECT COALESCE(SUM(
                   usage[((p_cap_window[k] - 1) * family_count + (f.j - 1)) * 6 + m]
                   + CASE WHEN m <= 2 THEN pending[(f.j - 1) * 2 + m] ELSE 0 END), 0)
        INTO used
        FROM unnest(p_families) WITH ORDINALITY AS f(family, j)
        CROSS JOIN generate_series(1, 6) AS m
        WHERE (p_cap_family[k] IS NULL OR f.family = p_cap_family[k])
          AND p_cap_columns[k] & (1 << (m - 1)) <> 0;
        IF used > p_cap_most[k] THEN
            RETURN;
        END IF;
    END LOOP;
    INSERT INTO reservations
        (device_id, key, user_id, family, model, prompts, credits, created_at, expires_at,
         counts_on_expiry, session_id)
    VALUES (p_device, p_key, p_user, p_family, p_model, 1, p_cost, p_now, p_expires, p_hook,
            p_session);
    reserved := TRUE;
END
$$;
