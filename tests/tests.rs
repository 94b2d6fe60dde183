mod db_contract;
