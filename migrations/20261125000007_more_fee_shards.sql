-- Fee revenue is credited by almost every movement; with 8 shards, 16
-- concurrent transfers queued on its row locks. 32 shards spread them out.
CREATE OR REPLACE FUNCTION house_account_shards(account_kind text) RETURNS smallint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE account_kind WHEN 'fee_revenue' THEN 32 ELSE 1 END::smallint
$$;
SELECT open_house_accounts(code) FROM currencies;
