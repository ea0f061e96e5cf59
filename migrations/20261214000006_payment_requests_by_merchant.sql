-- A business's requests of the last day, counted at each new one: each is
-- an SMS in the platform's name, so one business (or a key it lost) asks
-- at most so many customers a day (merchants::requests::check_room).
CREATE INDEX payment_requests_by_merchant ON payment_requests (merchant_id, created_at);
