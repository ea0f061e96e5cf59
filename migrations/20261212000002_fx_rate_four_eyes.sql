-- Four eyes on the rate book. A rate (or the spread) is a price the house
-- converts at: one admin alone setting it off the market, even a little on
-- two legs at once, could have an accomplice convert at it and take
-- e-money the house never had. So a change one admin asks for waits here
-- until a second admin sets the same value (rate_book::propose); one
-- waiting value per subject (a currency's USD leg, or the spread), the
-- latest asked.
CREATE TABLE fx_rate_proposals (
    -- A currency code (its USD leg) or 'spread'.
    subject     text PRIMARY KEY CONSTRAINT fx_rate_proposals_subject_known
                CHECK (subject = 'spread' OR subject ~ '^[A-Z]{3}$'),
    value       numeric(24, 10) NOT NULL CONSTRAINT fx_rate_proposals_non_negative CHECK (value >= 0),
    proposed_by uuid NOT NULL REFERENCES users (id),
    proposed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE fx_rate_proposals IS 'Rate book changes one admin asked for, waiting for a second admin.';
