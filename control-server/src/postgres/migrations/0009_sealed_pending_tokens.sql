-- A device's replacement token (after a rotation or a kill), sealed with
-- the server key the replicas share, so that whichever replica the device
-- reaches next hands it over.
ALTER TABLE devices ADD COLUMN pending_token_sealed BYTEA;
