-- The blockchain audit layer: a proof-of-authority chain of signed blocks,
-- each the Merkle root of the transactions it seals.

CREATE TABLE chain_authorities (
    name       text PRIMARY KEY CONSTRAINT chain_authorities_name_format CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
    -- Ed25519 public key, hex.
    public_key text NOT NULL CONSTRAINT chain_authorities_public_key_key UNIQUE
               CONSTRAINT chain_authorities_public_key_format CHECK (public_key ~ '^[0-9a-f]{64}$'),
    -- The private key, AES-256-GCM under the master key (context: the name).
    sealed_key bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE chain_authorities IS 'Who may seal blocks: one Ed25519 key per gateway instance name.';

CREATE TABLE blocks (
    block_index   bigint PRIMARY KEY CONSTRAINT blocks_index_non_negative CHECK (block_index >= 0),
    previous_hash text NOT NULL,
    merkle_root   text NOT NULL,
    sealed_at     timestamptz NOT NULL,
    tx_count      integer NOT NULL CONSTRAINT blocks_tx_count_non_negative CHECK (tx_count >= 0),
    sealer        text NOT NULL REFERENCES chain_authorities (name),
    -- The canonical header string; block_hash = SHA3-256(header).
    header        text NOT NULL,
    block_hash    text NOT NULL CONSTRAINT blocks_block_hash_key UNIQUE,
    -- Ed25519 signature of the 32 raw bytes of block_hash, hex.
    signature     text NOT NULL
);
COMMENT ON TABLE blocks IS 'Sealed blocks; block n links to block n-1 through previous_hash.';

CREATE TABLE block_entries (
    block_index bigint NOT NULL REFERENCES blocks (block_index),
    leaf_index  integer NOT NULL CONSTRAINT block_entries_leaf_index_non_negative CHECK (leaf_index >= 0),
    tx_id       uuid NOT NULL CONSTRAINT block_entries_tx_id_key UNIQUE REFERENCES transactions (tx_id),
    -- SHA3-256(0x00 ‖ canonical transaction bytes), hex.
    leaf_hash   text NOT NULL,
    PRIMARY KEY (block_index, leaf_index)
);
COMMENT ON TABLE block_entries IS 'The leaves of each block, in Merkle order.';

-- Transactions committed but not sealed yet. A movement writes its row here
-- in the same database transaction that moves the money, so no committed
-- transaction can miss the chain and no rolled-back one can enter it.
CREATE TABLE chain_pending (
    -- Queue order (commit order, near enough): the sealer takes the oldest
    -- through this index however long the queue grows.
    seq   bigserial PRIMARY KEY,
    tx_id uuid NOT NULL CONSTRAINT chain_pending_tx_id_key UNIQUE REFERENCES transactions (tx_id)
);
INSERT INTO chain_pending (tx_id) SELECT tx_id FROM transactions ORDER BY seq;

CREATE TRIGGER blocks_append_only BEFORE UPDATE OR DELETE ON blocks
    FOR EACH ROW EXECUTE FUNCTION reject_modification();
CREATE TRIGGER block_entries_append_only BEFORE UPDATE OR DELETE ON block_entries
    FOR EACH ROW EXECUTE FUNCTION reject_modification();
CREATE TRIGGER chain_authorities_append_only BEFORE UPDATE OR DELETE ON chain_authorities
    FOR EACH ROW EXECUTE FUNCTION reject_modification();
CREATE TRIGGER blocks_no_truncate BEFORE TRUNCATE ON blocks
    FOR EACH STATEMENT EXECUTE FUNCTION reject_truncate();
CREATE TRIGGER block_entries_no_truncate BEFORE TRUNCATE ON block_entries
    FOR EACH STATEMENT EXECUTE FUNCTION reject_truncate();

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chainpay_app') THEN
        EXECUTE 'REVOKE UPDATE, DELETE ON blocks, block_entries, chain_authorities FROM chainpay_app';
    END IF;
END
$$;
