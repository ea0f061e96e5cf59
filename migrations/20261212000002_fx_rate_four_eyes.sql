-- Four eyes on the rate book. A leg's anchor is the rate two admins, the
-- feed or the seed last set: one admin alone may move the leg only within
-- 2 % of it (chainpay_core::fx::SOLE_ADMIN_BAND), so small corrections
-- cannot add up to a rate far from the market. A leg with no anchor (added
-- by hand) moves only with two admins.
ALTER TABLE fx_rates ADD COLUMN anchor_mid numeric(24, 10)
    CONSTRAINT fx_rates_anchor_positive CHECK (anchor_mid > 0);
UPDATE fx_rates SET anchor_mid = usd_mid;

-- A larger move one admin asked for, waiting for a second admin to send the
-- same rate (rate_book::set_leg); one per currency, the latest ask.
CREATE TABLE fx_rate_proposals (
    currency    text PRIMARY KEY REFERENCES currencies (code),
    usd_mid     numeric(24, 10) NOT NULL CONSTRAINT fx_rate_proposals_positive CHECK (usd_mid > 0),
    proposed_by uuid NOT NULL REFERENCES users (id),
    proposed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE fx_rate_proposals IS 'USD legs beyond one admin''s band, waiting for a second admin.';
