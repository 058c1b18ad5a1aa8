-- whole_id(x): the id x (read as double) as a bigint when it is a whole number >= 0 below 9e15
-- (exact as a double), else null. ids are read as double because duckdb's bigint cast rounds
-- '2.5' to 3
create or replace temp macro whole_id(x) as
    case when x >= 0 and x < 9e15 and x = trunc(x) then x::bigint end
