-- the columns of one parquet file as duckdb reads them (name, duckdb type, 1-based position),
-- for recs.stages.validate's type check before the file is loaded
with source as (

    select * from (describe select * exclude (file_row_number) from movielens_parquet($parquet_path))

),

final as (

    select
        column_name,
        column_type,
        row_number() over () as position
    from source

)

select * from final
