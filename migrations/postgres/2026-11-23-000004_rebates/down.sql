DROP TABLE withdrawals;
DROP TABLE wallets;
DROP TABLE ledger_entries;
DROP TABLE rebates;
DROP TABLE rebate_rule_sets;
