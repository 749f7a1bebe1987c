-- Statements by text (calls, execution and planning time, rows, distinct texts), then the totals.
SELECT sum(calls) calls, round(sum(total_exec_time)::numeric,1) exec_ms, round(sum(total_plan_time)::numeric,1) plan_ms, sum(rows) rows_, count(*) shapes, left(regexp_replace(query,'\s+',' ','g'),80) q FROM pg_stat_statements GROUP BY 6 ORDER BY 2+3 DESC LIMIT 30;
SELECT sum(calls) calls, round(sum(total_exec_time)::numeric,1) exec_ms, round(sum(total_plan_time)::numeric,1) plan_ms, count(*) shapes FROM pg_stat_statements;
