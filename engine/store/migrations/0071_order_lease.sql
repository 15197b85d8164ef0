-- A submission's lease on its order (engine/execution/oms.py): who is sending it, since when, until when. No other
-- worker resends an order still 'new' before its lease has run out and the venue, asked by client order id, has
-- not got it; the lease is longer than the venue's receive window, so a late first request is refused there.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS lease_owner text;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS lease_since timestamptz;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS lease_until timestamptz;
