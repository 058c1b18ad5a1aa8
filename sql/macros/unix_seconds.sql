-- unix_seconds(x): a parquet timestamp column as whole unix seconds (bigint). an integer column
-- is taken as seconds since 1970-01-01 utc (MovieLens's unit); a TIMESTAMP of any unit is read
-- as utc and a TIMESTAMP WITH TIME ZONE as the instant it names, both floored to the second.
-- typeof(x) is fixed when the query is bound, so one branch applies; the try_casts only make
-- the other branches bind
create or replace temp macro unix_seconds(x) as
    case
        when typeof(x) = 'TIMESTAMP WITH TIME ZONE'
            then floor(epoch(try_cast(x as timestamptz)))::bigint
        when typeof(x) like 'TIMESTAMP%'
            then floor(epoch(try_cast(x as timestamp)))::bigint
        else try_cast(x as bigint)
    end
