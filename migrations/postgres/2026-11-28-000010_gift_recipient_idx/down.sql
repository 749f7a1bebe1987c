DROP INDEX orders_gift_to_user_idx;
