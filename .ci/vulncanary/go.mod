module vulncanary

go 1.26

require golang.org/x/image v0.25.0
