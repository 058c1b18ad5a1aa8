-- the first row duckdb rejected in the latest scan of one csv file (none when it read cleanly)
with scans as (

    select * from reject_scans

),

errors as (

    select * from reject_errors

),

latest_scan as (

    select max(scan_id) as scan_id
    from scans
    where file_path = $csv_path

),

final as (

    select
        errors.line,
        errors.column_idx,
        errors.column_name,
        errors.error_type,
        errors.csv_line,
        errors.error_message
    from errors
    inner join latest_scan on latest_scan.scan_id = errors.scan_id
    order by errors.line, errors.column_idx
    limit 1

)

select * from final
