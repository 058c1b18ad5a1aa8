-- the first row duckdb rejected in the latest scan of one csv file (none when it read cleanly)
with latest_scan as (

    select max(scan_id) as scan_id
    from reject_scans
    where file_path = $csv_path

),

final as (

    select
        reject_errors.line,
        reject_errors.column_idx,
        reject_errors.column_name,
        reject_errors.error_type,
        reject_errors.csv_line,
        reject_errors.error_message
    from reject_errors
    inner join latest_scan on latest_scan.scan_id = reject_errors.scan_id
    order by reject_errors.line, reject_errors.column_idx
    limit 1

)

select * from final
