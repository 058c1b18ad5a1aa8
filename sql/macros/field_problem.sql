-- field_problem(kind, v): the problem with one csv field read as text, null when it is fine.
-- kind: 'id' a whole number >= 0 below 9e15 (whole_id, told apart here), 'rating' 0.5-5.0 in
-- half stars, 'timestamp' a whole number, 'digits' digits only or empty. the rules match the
-- loads in load/; only the failure-path checks/*_first_problem queries use it
create or replace temp macro field_problem(kind, v) as (
    case
        when v is null or trim(v) = '' then
            case when kind <> 'digits' then 'empty' end
        when kind = 'digits' then
            case when not regexp_full_match(trim(v), '[0-9]{1,15}') then 'not digits' end
        when kind = 'timestamp' then
            case when try_cast(v as bigint) is null then 'not a number' end
        when try_cast(v as double) is null
            or isnan(try_cast(v as double))
            or isinf(try_cast(v as double)) then 'not a number'
        when kind = 'id' and try_cast(v as double) < 0 then 'negative'
        when kind = 'id' and try_cast(v as double) <> trunc(try_cast(v as double)) then 'not whole'
        when kind = 'id' and try_cast(v as double) >= 9e15 then 'too large'
        when kind = 'rating' and not (try_cast(v as double) between 0.5 and 5.0) then 'out of range'
        when kind = 'rating' and try_cast(v as double) * 2 <> round(try_cast(v as double) * 2)
            then 'not half star'
    end
)
