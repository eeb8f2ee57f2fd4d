-- The SHA-256 of a device's installed daemon binary, which the server
-- compares with the agent release it serves (is the device behind?).
ALTER TABLE devices ADD COLUMN agent_build TEXT;
