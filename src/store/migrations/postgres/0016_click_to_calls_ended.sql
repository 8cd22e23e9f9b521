-- Retention removes click-to-call requests that ended before its cut, oldest first: this finds
-- them without reading every request (its search was a scan of the table and a sort, once a
-- minute). Only ended requests are in it, and each enters once, when it ends.
CREATE INDEX click_to_calls_ended ON click_to_calls(updated_at) WHERE state IN ('answered', 'failed');
