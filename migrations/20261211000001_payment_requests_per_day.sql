-- How many requests a business made of a customer in the last day, whatever
-- became of them (a declined request no longer counts as waiting, yet its
-- SMS was sent): the daily cap per business and customer reads this.
CREATE INDEX payment_requests_by_customer ON payment_requests (customer_id, created_at);
