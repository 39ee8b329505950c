"""AWS access: client factory, retries and waits, ownership tags. Used by resources/ and engine/."""
