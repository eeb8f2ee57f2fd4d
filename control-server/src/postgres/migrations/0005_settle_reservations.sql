-- A stored event settles the reservation of its turn, as on SQLite: a
-- request that counted its prompt (now in the running totals) or a turn
-- the device released. A replayed event is not inserted (the unique index
-- on device and id), so it settles nothing. Fired after events_add_usage
-- (triggers run in name order), under the person's row lock it took.
CREATE FUNCTION ccgate_settle_reservation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.turn_key IS NOT NULL AND NEW.device_id IS NOT NULL
       AND ((NEW.type = 'request' AND NEW.prompts > 0) OR NEW.type = 'turn_released') THEN
        DELETE FROM reservations WHERE device_id = NEW.device_id AND key = NEW.turn_key;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_settle_reservation AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION ccgate_settle_reservation();
