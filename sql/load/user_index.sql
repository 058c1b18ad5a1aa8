-- dense 0-based row index of the ratings matrix, in user_id order
create or replace temp table user_index as

with rated as (

    select distinct user_id from ratings

),

final as (

    select
        user_id,
        (row_number() over (order by user_id) - 1)::integer as user_index
    from rated

)

select * from final
