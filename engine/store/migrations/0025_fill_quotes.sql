-- The market price a simulated (paper) fill was made against: series, observation time, age, replayed.
-- NULL for fills a venue reports itself. See engine.data.quote.Quote.
ALTER TABLE fills ADD COLUMN IF NOT EXISTS quote jsonb;
