-- movielens_csv(path, column_types): a MovieLens-latest csv file (header line, ',' between
-- fields, '"' quotes) read with exactly `column_types` ({'name': 'TYPE', ...} in file order),
-- nothing sniffed. rejects := true keeps malformed rows (bad quoting, wrong field count, text
-- where a number belongs, bytes that are not utf-8) aside in reject_errors and reject_scans
-- instead of failing the scan
create or replace temp macro movielens_csv(path, column_types, rejects := false) as table

    select * from read_csv(
        path,
        header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
        store_rejects = rejects, rejects_limit = case when rejects then 100 else 0 end,
        columns = column_types
    )
