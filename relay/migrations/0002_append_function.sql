-- One append batch in one statement (docs/architecture.md, "Relay storage backends"):
-- lock the batch's volume heads in volume order, number the bundles densely, insert
-- them, raise the heads and announce them on `channel` (payloads of `volume-hex:head`
-- pairs joined by commas, each at most `max_payload` bytes). Returns each job's last
-- sequence number, in job order. Run alone, the statement is its own transaction: the
-- head rows stay locked from the lock to the commit, all on the server, with no network
-- round trip in between.
CREATE FUNCTION mes_append(job_volumes BYTEA[], job_counts BIGINT[], bundles BYTEA[],
                           channel TEXT, max_payload INTEGER)
RETURNS BIGINT[] LANGUAGE plpgsql AS $$
DECLARE
    volumes BYTEA[];
    heads BIGINT[];
    lasts BIGINT[] := '{}';
    seqs BIGINT[] := '{}';
    bundle_volumes BYTEA[] := '{}';
    i INTEGER;
    j INTEGER;
    k INTEGER;
    payload TEXT := '';
    item TEXT;
BEGIN
    INSERT INTO volume_heads (volume) SELECT DISTINCT unnest(job_volumes)
        ON CONFLICT DO NOTHING;
    SELECT array_agg(t.volume ORDER BY t.volume), array_agg(t.head ORDER BY t.volume)
        INTO volumes, heads
        FROM (SELECT h.volume, h.head FROM volume_heads h
              WHERE h.volume = ANY(job_volumes) ORDER BY h.volume FOR UPDATE) t;
    FOR i IN 1 .. array_length(job_volumes, 1) LOOP
        k := array_position(volumes, job_volumes[i]);
        FOR j IN 1 .. job_counts[i] LOOP
            heads[k] := heads[k] + 1;
            seqs := seqs || heads[k];
            bundle_volumes := bundle_volumes || job_volumes[i];
        END LOOP;
        lasts := lasts || heads[k];
    END LOOP;
    INSERT INTO log (volume, seq, bundle)
        SELECT * FROM unnest(bundle_volumes, seqs, bundles);
    UPDATE volume_heads h SET head = u.head
        FROM unnest(volumes, heads) AS u(volume, head) WHERE h.volume = u.volume;
    FOR k IN 1 .. array_length(volumes, 1) LOOP
        item := encode(volumes[k], 'hex') || ':' || heads[k];
        IF payload = '' THEN
            payload := item;
        ELSIF length(payload) + 1 + length(item) > max_payload THEN
            PERFORM pg_notify(channel, payload);
            payload := item;
        ELSE
            payload := payload || ',' || item;
        END IF;
    END LOOP;
    PERFORM pg_notify(channel, payload);
    RETURN lasts;
END
$$;
